"""ctypes bindings of include/moediffuse.h (ABI 1.x).

The structs mirror the header field for field; every one starts with its
size, which this module sets, so the library knows which fields we have.
The library is $MOEDIFFUSE_LIB, else libmoediffuse.so.1 from the loader's
search path.
"""
import ctypes
import os
import threading

ABI_MAJOR = 1
ABI_MINOR = 1

OK = 0
ERR_CANCELLED = -6
ERR_BUSY = -7

STAGE_TEXT, STAGE_ENCODE_IMAGE, STAGE_DENOISE, STAGE_DECODE = 1, 2, 3, 4
IMAGE_LIBRARY_OWNED = 1

c_size, c_i32, c_u32, c_u64 = ctypes.c_size_t, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint64
c_str, c_void = ctypes.c_char_p, ctypes.c_void_p


class Image(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("data", ctypes.POINTER(ctypes.c_uint8)),
                ("width", c_i32), ("height", c_i32), ("channels", c_i32), ("stride", c_i32),
                ("flags", c_u32), ("reserved", c_u32)]


class Progress(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("stage", c_i32), ("step", c_i32), ("total", c_i32),
                ("reserved", c_i32), ("preview", ctypes.POINTER(Image))]


PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_void, ctypes.POINTER(Progress))
LOG_FN = ctypes.CFUNCTYPE(None, c_void, ctypes.c_int, c_str)


class ContextParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("model_path", c_str), ("progress", PROGRESS_FN),
                ("progress_user", c_void), ("log", LOG_FN), ("log_user", c_void),
                ("threads", c_i32), ("moe_top_k", c_i32), ("log_level", c_i32), ("reserved", c_i32)]


class GenParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("prompt", c_str), ("negative_prompt", c_str),
                ("sampler", c_str), ("seed", c_u64), ("init_image", ctypes.POINTER(Image)),
                ("mask", ctypes.POINTER(Image)), ("width", c_i32), ("height", c_i32),
                ("steps", c_i32), ("guidance", ctypes.c_float), ("strength", ctypes.c_float),
                ("preview_interval", c_i32),
                # ABI 1.1
                ("clip_skip", c_i32), ("reserved1", c_i32)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("params_total", c_u64), ("params_active", c_u64),
                ("params_unet", c_u64), ("family", c_i32), ("native_width", c_i32),
                ("native_height", c_i32), ("size_multiple", c_i32), ("unet_levels", c_i32),
                ("transformer_blocks", c_i32), ("moe_layers", c_i32), ("num_experts", c_i32),
                ("top_k", c_i32), ("routing", c_i32)]


class Context(ctypes.Structure):
    pass


CTX = ctypes.POINTER(Context)


class Api(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size), ("abi_major", c_i32), ("abi_minor", c_i32),
        ("version", ctypes.CFUNCTYPE(c_str)),
        ("status_name", ctypes.CFUNCTYPE(c_str, ctypes.c_int)),
        ("sampler_name", ctypes.CFUNCTYPE(c_str, ctypes.c_int)),
        ("context_params_init", ctypes.CFUNCTYPE(None, ctypes.POINTER(ContextParams), c_size)),
        ("gen_params_init", ctypes.CFUNCTYPE(None, ctypes.POINTER(GenParams), c_size)),
        ("image_init", ctypes.CFUNCTYPE(None, ctypes.POINTER(Image), c_size)),
        ("context_create", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ContextParams),
                                            ctypes.POINTER(CTX), ctypes.c_char_p, c_size)),
        ("context_destroy", ctypes.CFUNCTYPE(None, CTX)),
        ("set_progress", ctypes.CFUNCTYPE(ctypes.c_int, CTX, PROGRESS_FN, c_void)),
        ("set_log", ctypes.CFUNCTYPE(ctypes.c_int, CTX, LOG_FN, c_void, ctypes.c_int)),
        ("model_info", ctypes.CFUNCTYPE(ctypes.c_int, CTX, ctypes.POINTER(ModelInfo))),
        ("generate", ctypes.CFUNCTYPE(ctypes.c_int, CTX, ctypes.POINTER(GenParams),
                                      ctypes.POINTER(Image), ctypes.c_char_p, c_size)),
        ("cancel", ctypes.CFUNCTYPE(ctypes.c_int, CTX)),
        ("image_free", ctypes.CFUNCTYPE(None, ctypes.POINTER(Image))),
        ("get_feature", ctypes.CFUNCTYPE(c_void, c_str)),
    ]


class Error(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


_lock = threading.Lock()
_api = None


def api():
    """The function table (loaded once), or Error when the library or its ABI major is missing."""
    global _api
    with _lock:
        if _api is None:
            path = os.environ.get("MOEDIFFUSE_LIB", "libmoediffuse.so.1")
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                raise Error(-2, f"cannot load {path}: {e}") from e
            entry = lib.moediffuse_get_api
            entry.restype = ctypes.POINTER(Api)
            entry.argtypes = [ctypes.c_int, ctypes.c_int]
            table = entry(ABI_MAJOR, ABI_MINOR)
            if not table:
                raise Error(-5, f"{path} does not serve ABI {ABI_MAJOR}")
            _api = table.contents
            _api._lib = lib  # keeps the library loaded
        return _api


def samplers():
    a = api()
    names, i = [], 0
    while a.sampler_name(i):
        names.append(a.sampler_name(i).decode())
        i += 1
    return names


class Model:
    """One context: a loaded model. progress(stage, step, total) returning True cancels."""

    def __init__(self, path, threads=0):
        self.api = api()
        self._progress = None
        self._cb = PROGRESS_FN(self._on_progress)  # kept alive as long as the context
        p = ContextParams()
        self.api.context_params_init(ctypes.byref(p), ctypes.sizeof(p))
        p.model_path = path.encode()
        p.threads = threads
        p.progress = self._cb
        msg = ctypes.create_string_buffer(1024)
        self.ctx = CTX()
        rc = self.api.context_create(ctypes.byref(p), ctypes.byref(self.ctx), msg, len(msg))
        if rc != OK:
            raise Error(rc, msg.value.decode(errors="replace"))

    def _on_progress(self, user, p):
        if self._progress is None:
            return 0
        try:
            return 1 if self._progress(p.contents.stage, p.contents.step, p.contents.total) else 0
        except Exception:  # an exception cannot cross into C: cancel instead
            return 1

    def info(self):
        i = ModelInfo()
        i.struct_size = ctypes.sizeof(i)
        self.api.model_info(self.ctx, ctypes.byref(i))
        return i

    def cancel(self):
        """Callable from any thread."""
        self.api.cancel(self.ctx)

    def generate(self, prompt, negative="", steps=20, guidance=7.5, seed=0, sampler=None,
                 width=0, height=0, init=None, mask=None, strength=0.75, progress=None):
        """RGB bytes, width, height. init: (bytes, w, h, channels 1/3/4);
        mask: (grey bytes, w, h): 255 = repaint."""
        g = GenParams()
        self.api.gen_params_init(ctypes.byref(g), ctypes.sizeof(g))
        g.prompt = prompt.encode()
        g.negative_prompt = negative.encode() if negative else None
        g.sampler = sampler.encode() if sampler else None
        g.steps, g.guidance, g.seed = steps, guidance, seed
        g.width, g.height, g.strength = width, height, strength
        keep = []
        for field, src in (("init_image", init), ("mask", mask)):
            if src is None:
                continue
            data, w, h = src[:3]
            ch = src[3] if len(src) > 3 else 1
            buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            img = Image()
            self.api.image_init(ctypes.byref(img), ctypes.sizeof(img))
            img.data, img.width, img.height, img.channels = buf, w, h, ch
            keep += [buf, img]
            setattr(g, field, ctypes.pointer(img))
        out = Image()
        self.api.image_init(ctypes.byref(out), ctypes.sizeof(out))
        msg = ctypes.create_string_buffer(1024)
        self._progress = progress
        try:
            rc = self.api.generate(self.ctx, ctypes.byref(g), ctypes.byref(out), msg, len(msg))
        finally:
            self._progress = None
        if rc != OK:
            raise Error(rc, msg.value.decode(errors="replace"))
        try:
            rows = [ctypes.string_at(ctypes.addressof(out.data.contents) + y * out.stride,
                                     out.width * 3) for y in range(out.height)]
            return b"".join(rows), out.width, out.height
        finally:
            self.api.image_free(ctypes.byref(out))

    def close(self):
        if self.ctx:
            self.api.context_destroy(self.ctx)
            self.ctx = CTX()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
