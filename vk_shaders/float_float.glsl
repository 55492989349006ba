// Float-float ("double-single") addition: (hi, lo) pairs with |lo| at most
// half an ulp of hi, about 44 significant bits from fp32 operations only
// (no shaderFloat64 needed). `precise` keeps the compiler from
// reassociating the error terms away.
vec2 md_ff_add(vec2 a, vec2 b)
{
    precise float s = a.x + b.x;
    precise float bb = s - a.x;
    precise float err = (a.x - (s - bb)) + (b.x - bb);
    precise float lo = err + (a.y + b.y);
    precise float hi = s + lo;
    precise float rest = lo - (hi - s);
    return vec2(hi, rest);
}
