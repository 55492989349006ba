#!/usr/bin/env bash
# End to end: `moe-diffuse serve` on a free port with the tiny model, driven
# by curl and by a standard-library Python client (tests/server/client.py):
# every endpoint, progress while a job runs, an interrupt, two clients at
# once, malformed and oversized bodies, a wrong password; the images are
# the CLI's pixel for pixel (docs/server.md).
set -u
BUILD=${1:?build dir}
CLI="$BUILD/moe-diffuse"
IMG="$BUILD/md-test-image"
G="${MD_GOLDEN_DIR:?}"
MODEL="$G/tiny-sd-dense"
KOHYA="$G/tiny-sd-lora/lora_kohya.safetensors"
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
. "$HERE/support/checks.sh"
export MOEDIFFUSE_HASH_CACHE="$TMP/hashes.tsv"
for tool in curl python3; do
  command -v $tool >/dev/null || { echo "server: skipped ($tool not installed)"; exit 77; }
done
if "$CLI" serve --help 2>&1 | grep -q "has no .serve."; then
  echo "server: skipped (built without libmicrohttpd)"; exit 77
fi
mkdir -p "$TMP/loras"
cp "$KOHYA" "$TMP/loras/ink.safetensors"
AUTH=user:secret

start() { # start LOG ARGS...: the server in the background, URL set once it listens
  local log=$1; shift
  "$CLI" serve -m "$MODEL" --listen 127.0.0.1:0 --threads 2 "$@" 2>"$log" &
  PID=$!
  for _ in $(seq 200); do
    URL=$(grep -o 'http://[0-9.]*:[0-9]*' "$log" | head -1)
    [ -n "$URL" ] && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start: $(cat "$log")"; return 1
}
api() { curl -s -u "$AUTH" -H 'Content-Type: application/json' "$@"; }
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# the first image of a reply into a PNG file
png_of() { python3 -c 'import json,base64,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["images"][0]))' "$1" "$2"; }
b64() { base64 -w0 "$1"; }
same() { cmp -s <("$IMG" pixels "$1") <("$IMG" pixels "$2"); }
json_get() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(eval("v"+sys.argv[2]))' "$1" "$2"; }

start "$TMP/server.log" --api-auth "$AUTH" --lora-dir "$TMP/loras" || exit 1

# 1. txt2img is the CLI's image, with the CLI's parameters text.
gen() { "$CLI" -q -m "$MODEL" --steps 3 -W 64 -H 64 --seed 7 "$@"; }
gen -p "a cat" -n "blurry" --cfg-scale 6 --sampler euler_a -o "$TMP/cli.png"
api -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": "a cat", "negative_prompt": "blurry",
  "steps": 3, "width": 64, "height": 64, "seed": 7, "cfg_scale": 6, "sampler_name": "Euler a"}' \
  > "$TMP/t2i.json"
png_of "$TMP/t2i.json" "$TMP/t2i.png"
check "txt2img = the CLI's pixels" same "$TMP/cli.png" "$TMP/t2i.png"
check "txt2img's PNG carries the CLI's parameters text" \
  cmp -s <("$IMG" text "$TMP/cli.png" parameters) <("$IMG" text "$TMP/t2i.png" parameters)
if [ "$(json_get "$TMP/t2i.json" '["parameters"]["cfg_scale"]')" = 6 ] &&
   json_get "$TMP/t2i.json" '["info"]' | grep -q '"sampler_name":"Euler a"'; then
  ok "txt2img: parameters echo the request, info is a JSON string"
else bad "txt2img reply: $(head -c 400 "$TMP/t2i.json")"; fi

# 2. Our own request fields by their batch names (guidance wins over cfg_scale).
api -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": "a cat", "negative_prompt": "blurry",
  "steps": 3, "width": 64, "height": 64, "seed": 7, "cfg_scale": 1, "guidance": 6,
  "sampler": "euler_a"}' > "$TMP/ours.json"
png_of "$TMP/ours.json" "$TMP/ours.png"
check "batch key names (guidance, sampler) work in the body" same "$TMP/cli.png" "$TMP/ours.png"

# 3. img2img and inpainting = the CLI's.
"$IMG" make "$TMP/mask.png" 64 64 left-white
gen -p "a dog" --init-img "$TMP/cli.png" --strength 0.6 -o "$TMP/cli_i2i.png"
printf '{"prompt": "a dog", "steps": 3, "width": 64, "height": 64, "seed": 7,
  "denoising_strength": 0.6, "init_images": ["%s"]}' "$(b64 "$TMP/cli.png")" > "$TMP/i2i_req.json"
api -X POST "$URL/sdapi/v1/img2img" -d @"$TMP/i2i_req.json" > "$TMP/i2i.json"
png_of "$TMP/i2i.json" "$TMP/i2i.png"
check "img2img = the CLI's pixels" same "$TMP/cli_i2i.png" "$TMP/i2i.png"
gen -p "a dog" --init-img "$TMP/cli.png" --mask "$TMP/mask.png" --strength 0.9 -o "$TMP/cli_inp.png"
printf '{"prompt": "a dog", "steps": 3, "seed": 7, "denoising_strength": 0.9, "mask_blur": 4,
  "init_images": ["data:image/png;base64,%s"], "mask": "%s", "inpainting_fill": 1}' \
  "$(b64 "$TMP/cli.png")" "$(b64 "$TMP/mask.png")" > "$TMP/inp_req.json"
api -X POST "$URL/sdapi/v1/img2img" -d @"$TMP/inp_req.json" > "$TMP/inp.json"
png_of "$TMP/inp.json" "$TMP/inp.png"
check "inpainting (mask, data URL) = the CLI's pixels" same "$TMP/cli_inp.png" "$TMP/inp.png"
code=$(status -u "$AUTH" -X POST "$URL/sdapi/v1/img2img" -d '{"prompt": "x", "init_images": ["bm90IGFuIGltYWdl"]}')
check "img2img with a non-image is 422" [ "$code" = 422 ]

# 4. A LoRA tag found in --lora-dir = the CLI's.
gen -p "a cat <lora:ink:0.8>" --lora-dir "$TMP/loras" -o "$TMP/cli_lora.png"
api -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": "a cat <lora:ink:0.8>", "steps": 3,
  "width": 64, "height": 64, "seed": 7}' > "$TMP/lora.json"
png_of "$TMP/lora.json" "$TMP/lora.png"
check "<lora:ink:0.8> = the CLI's pixels" same "$TMP/cli_lora.png" "$TMP/lora.png"
code=$(status -u "$AUTH" -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": "<lora:../../etc/x:1>", "steps": 2}')
check "a LoRA name climbing out of --lora-dir is 422" [ "$code" = 422 ]
api "$URL/sdapi/v1/loras" > "$TMP/loras.json"
check "GET /loras lists ink" grep -q '"name":"ink","alias":"ink"' "$TMP/loras.json"

# 5. The read-only endpoints.
api "$URL/sdapi/v1/sd-models" > "$TMP/models.json"
sha=$(sha256sum "$MODEL/unet/diffusion_pytorch_model.safetensors" | cut -c1-64)
if grep -q "\"hash\":\"${sha:0:10}\"" "$TMP/models.json" && grep -q "\"sha256\":\"$sha\"" "$TMP/models.json" &&
   grep -q '"title":"tiny-sd-dense \[' "$TMP/models.json"; then ok "sd-models: title, hash, sha256"
else bad "sd-models: $(cat "$TMP/models.json")"; fi
api "$URL/sdapi/v1/samplers" > "$TMP/samplers.json"
check "samplers lists DPM++ 2M Karras" grep -q '"name":"DPM++ 2M Karras","aliases":\["dpmpp_2m_karras"\]' "$TMP/samplers.json"
api "$URL/sdapi/v1/options" > "$TMP/options.json"
check "options name the model" grep -q "\"sd_model_checkpoint\":\"tiny-sd-dense \[${sha:0:10}\]\"" "$TMP/options.json"
code=$(status -u "$AUTH" -X POST "$URL/sdapi/v1/options" -d "{\"sd_model_checkpoint\": \"tiny-sd-dense [${sha:0:10}]\", \"samples_save\": true}")
check "POST options naming the loaded model is 200" [ "$code" = 200 ]
printf '{"image": "%s"}' "$(b64 "$TMP/cli.png")" > "$TMP/pnginfo_req.json"
api -X POST "$URL/sdapi/v1/png-info" -d @"$TMP/pnginfo_req.json" > "$TMP/pnginfo.json"
if [ "$(json_get "$TMP/pnginfo.json" '["info"]')" = "$("$IMG" text "$TMP/cli.png" parameters)" ] &&
   [ "$(json_get "$TMP/pnginfo.json" '["parameters"]["Seed"]')" = 7 ]; then ok "png-info reads the parameters"
else bad "png-info: $(cat "$TMP/pnginfo.json")"; fi
api "$URL/moe/v1/stats" > "$TMP/stats.json"
check "moe stats: the dense model's last run" grep -q '"moe":false' "$TMP/stats.json"
code=$(status -u "$AUTH" "$URL/sdapi/v1/nothing")
check "an unknown path is 404" [ "$code" = 404 ]

# 6. Malformed and oversized bodies, wrong passwords.
code=$(status -u "$AUTH" -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": ')
check "malformed JSON is 400" [ "$code" = 400 ]
code=$(status -u "$AUTH" -X POST "$URL/sdapi/v1/txt2img" -d '[1, 2]')
check "a body that is no object is 422" [ "$code" = 422 ]
truncate -s 200M "$TMP/big.json"
hwm0=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
code=$(status -u "$AUTH" -X POST -T "$TMP/big.json" "$URL/sdapi/v1/txt2img")
check "a 200 MB body is 413" [ "$code" = 413 ]
code=$(status -u "$AUTH" -X POST -T "$TMP/big.json" -H 'Transfer-Encoding: chunked' "$URL/sdapi/v1/txt2img")
check "a 200 MB chunked body is 413" [ "$code" = 413 ]
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
check "the server never held the 200 MB (peak grew $((hwm - hwm0)) kB)" [ $((hwm - hwm0)) -lt 100000 ]
code=$(status -u user:wrong "$URL/sdapi/v1/sd-models")
check "a wrong password is 401" [ "$code" = 401 ]
code=$(status "$URL/sdapi/v1/progress")
check "no password is 401" [ "$code" = 401 ]

# 7. The Python client: progress, interrupt, two clients at once, errors.
check "python client" python3 "$HERE/server/client.py" "$URL" "$AUTH"

# 8. SIGTERM mid-generation cancels the job; the server exits 0 at once.
api -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": "x", "steps": 1000, "width": 64,
  "height": 64}' > "$TMP/cancelled.json" &
CURL=$!
for _ in $(seq 100); do
  api "$URL/sdapi/v1/progress?skip_current_image=true" | grep -q '"sampling_step":[1-9]' && break
  sleep 0.1
done
t0=$(date +%s)
kill -TERM "$PID"
wait "$PID"; rc=$?
PID=
check "SIGTERM: the server exits 0 (got $rc)" [ "$rc" = 0 ]
check "SIGTERM: within 10 s" [ $(( $(date +%s) - t0 )) -le 10 ]
wait "$CURL"
check "SIGTERM: no 'error' of ours in the log" bash -c "! grep -qi 'sanitizer\|leak' '$TMP/server.log'"

# 9. --models-dir: switching through /options to an MoE model, its MoE
# fields in the body, its routing in /moe/v1/stats. Also: no --api-auth, no
# password needed; a port in use is a clear error.
mkdir -p "$TMP/models"
ln -s "$G/tiny-sd-dense" "$TMP/models/dense"
ln -s "$G/tiny-sd-moe" "$TMP/models/moe"
cp "$KOHYA" "$TMP/models/broken.safetensors"
MODEL="$TMP/models/dense"
start "$TMP/server2.log" -q --models-dir "$TMP/models" || exit 1
code=$(status "$URL/sdapi/v1/samplers")
check "without --api-auth no password is needed" [ "$code" = 200 ]
curl -s "$URL/sdapi/v1/sd-models" > "$TMP/models.json"
check "sd-models lists --models-dir, the loaded model first" \
  bash -c "grep -q '^\[{\"title\":\"dense \[' '$TMP/models.json' &&
           grep -q '\"model_name\":\"moe\"' '$TMP/models.json' &&
           grep -q '\"filename\":\"$TMP/models/broken.safetensors\"' '$TMP/models.json'"
curl -s -X POST "$URL/sdapi/v1/options" -d '{"sd_model_checkpoint": "moe"}' > "$TMP/switch.json"
curl -s "$URL/sdapi/v1/options" > "$TMP/options2.json"
check "POST options switches to moe" grep -q '"sd_model_checkpoint":"moe \[' "$TMP/options2.json"
code=$(status -X POST "$URL/sdapi/v1/options" -d '{"sd_model_checkpoint": "broken"}')
check "a model that fails to load: 500, the loaded one stays" \
  bash -c "[ $code = 500 ] && curl -s '$URL/sdapi/v1/options' | grep -q '\"sd_model_checkpoint\":\"moe \['"
code=$(status -X POST "$URL/sdapi/v1/options" -d '{"sd_model_checkpoint": "../etc"}')
check "a name outside --models-dir: 422" [ "$code" = 422 ]
code=$(status "$URL/moe/v1/stats")
check "moe stats before any run on the model: 404" [ "$code" = 404 ]
MODEL="$G/tiny-sd-moe"
"$CLI" -q -m "$MODEL" -p "a cat" --steps 3 -W 64 -H 64 --seed 7 --moe-top-k 1 --moe-routing token \
  -o "$TMP/cli_moe.png"
curl -s -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": "a cat", "steps": 3, "width": 64,
  "height": 64, "seed": 7, "moe_top_k": 1, "moe_routing": "token"}' > "$TMP/moe.json"
png_of "$TMP/moe.json" "$TMP/moe.png"
check "MoE fields by their batch names: the CLI's pixels" same "$TMP/cli_moe.png" "$TMP/moe.png"
curl -s "$URL/moe/v1/stats" > "$TMP/moe_stats.json"
if python3 - "$TMP/moe_stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["moe"] and s["layers"], s
for l in s["layers"]:
    assert l["top_k"] == 1 and len(l["counts"]) == l["num_experts"] and sum(l["counts"]) > 0, l
PY
then ok "moe stats: every layer's expert counts of the last run (top-1)"
else bad "moe stats: $(head -c 600 "$TMP/moe_stats.json")"; fi
code=$(status -X POST "$URL/sdapi/v1/txt2img" -d '{"prompt": "x", "moe_routing": "sideways"}')
check "a bad MoE field value is 422" [ "$code" = 422 ]
port=${URL##*:}
"$CLI" serve -m "$MODEL" --listen "127.0.0.1:$port" -q 2>"$TMP/inuse.log"; rc=$?
check "a port in use: exit 1 with a message" bash -c "[ $rc = 1 ] && grep -q 'cannot listen' '$TMP/inuse.log'"
kill -INT "$PID"; wait "$PID"; rc=$?; PID=
check "SIGINT when idle: exit 0" [ "$rc" = 0 ]

echo "server: $pass passed, $fail failed"
[ "$fail" = 0 ]
