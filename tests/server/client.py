"""A small A1111 API client (standard library only) driving a running
`moe-diffuse serve`: progress while a job runs, an interrupt, two clients
at once, a wrong password. Prints "ok ..." / "FAIL ..." lines and exits 1
on any failure. Usage: client.py URL USER:PASS"""
import base64
import json
import sys
import threading
import time
import urllib.error
import urllib.request

URL, AUTH = sys.argv[1], sys.argv[2]
failures = 0


def report(good, name, detail=""):
    global failures
    if good:
        print("ok   py: " + name)
    else:
        failures += 1
        print("FAIL py: %s %s" % (name, detail))


def call(path, body=None, auth=AUTH, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def is_png(b64):
    return base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"


def background(body, out):
    t0 = time.time()
    out["status"], out["reply"] = call("/sdapi/v1/txt2img", body)
    out["seconds"] = time.time() - t0


LONG = {"prompt": "a lighthouse", "steps": 30, "width": 64, "height": 64, "seed": 3}

# Progress polled while a job runs: steps advance, a preview arrives.
res = {}
t = threading.Thread(target=background, args=(LONG, res))
t.start()
seen_steps, preview, slowest = set(), False, 0.0
while t.is_alive():
    t0 = time.time()
    st, p = call("/sdapi/v1/progress")
    slowest = max(slowest, time.time() - t0)
    if st == 200 and p["state"]["job_count"] > 0:
        seen_steps.add(p["state"]["sampling_step"])
        if p["current_image"] and is_png(p["current_image"]):
            preview = True
    time.sleep(0.01)
t.join()
report(res.get("status") == 200 and len(res["reply"]["images"]) == 1, "the long job finished")
report(len(seen_steps) >= 2, "progress shows the steps advancing", sorted(seen_steps))
report(preview, "progress carries current_image (a PNG preview)")
report(slowest < 2.0, "/progress answers while a job runs (slowest %.2fs)" % slowest)
st, p = call("/sdapi/v1/progress")
report(st == 200 and p["progress"] == 0 and p["state"]["job_count"] == 0, "progress is idle after")

# An interrupt mid-generation ends the job early with no image.
res = {}
t = threading.Thread(target=background, args=(dict(LONG, steps=1000), res))
t.start()
deadline = time.time() + 60
while time.time() < deadline:
    st, p = call("/sdapi/v1/progress?skip_current_image=true")
    if p["state"]["sampling_step"] >= 2:
        break
    time.sleep(0.02)
report(p["current_image"] is None, "skip_current_image leaves the preview out")
st, _ = call("/sdapi/v1/interrupt", {})
report(st == 200, "POST /interrupt answers 200")
t.join(60)
info = json.loads(res["reply"]["info"]) if res.get("status") == 200 else {}
report(res.get("status") == 200 and res["reply"]["images"] == [] and info.get("interrupted"),
       "the interrupted job returns no image", res.get("status"))
report(res.get("seconds", 99) < 30, "the interrupted job stopped early (%.1fs)" % res.get("seconds", 99))

# Two clients at once: both served (one after the other), each its own seed.
a, b = {}, {}
ta = threading.Thread(target=background, args=(dict(LONG, steps=2, seed=11), a))
tb = threading.Thread(target=background, args=(dict(LONG, steps=2, seed=12), b))
ta.start(); tb.start(); ta.join(); tb.join()
ok2 = a.get("status") == 200 and b.get("status") == 200
report(ok2 and is_png(a["reply"]["images"][0]) and is_png(b["reply"]["images"][0]),
       "two clients at once both get their image", (a.get("status"), b.get("status")))
if ok2:
    report(json.loads(a["reply"]["info"])["seed"] == 11 and json.loads(b["reply"]["info"])["seed"] == 12,
           "each client gets its own seed")
    report(a["reply"]["images"][0] != b["reply"]["images"][0], "the two images differ")

# A client that disconnects mid-generation does not hold the queue: its
# job is cancelled and the next request is served at once.
import socket
from urllib.parse import urlparse
u = urlparse(URL)
body = json.dumps(dict(LONG, steps=1000)).encode()
sock = socket.create_connection((u.hostname, u.port))
sock.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Authorization: Basic " + base64.b64encode(AUTH.encode()) +
             b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
deadline = time.time() + 60
while time.time() < deadline:
    st, p = call("/sdapi/v1/progress?skip_current_image=true")
    if p["state"]["sampling_step"] >= 2:
        break
    time.sleep(0.02)
sock.close()
t0 = time.time()
st, r = call("/sdapi/v1/txt2img", {"prompt": "x", "steps": 2, "width": 64, "height": 64})
report(st == 200 and time.time() - t0 < 30,
       "a client gone mid-job: its job stops, the next is served (%.1fs)" % (time.time() - t0), st)

# A batch: batch_size x n_iter images, consecutive seeds.
st, r = call("/sdapi/v1/txt2img", {"prompt": "x", "steps": 2, "width": 64, "height": 64,
                                   "seed": 5, "batch_size": 2, "n_iter": 2})
info = json.loads(r["info"]) if st == 200 else {}
report(st == 200 and len(r["images"]) == 4 and info.get("all_seeds") == [5, 6, 7, 8],
       "batch_size 2 x n_iter 2: four images, seeds 5..8", st)

# The bodies the webuiapi package sends (every field it fills in, most of
# them A1111 options this server ignores).
WEBUIAPI = {"enable_hr": False, "denoising_strength": 0.7, "firstphase_width": 0,
            "firstphase_height": 0, "hr_scale": 2, "hr_upscaler": "Latent",
            "hr_second_pass_steps": 0, "hr_resize_x": 0, "hr_resize_y": 0,
            "hr_checkpoint_name": None, "hr_sampler_name": None, "hr_prompt": "",
            "hr_negative_prompt": "", "prompt": "a boat", "styles": [], "seed": 9,
            "subseed": -1, "subseed_strength": 0.0, "seed_resize_from_h": 0,
            "seed_resize_from_w": 0, "sampler_name": None, "batch_size": 1, "n_iter": 1,
            "steps": 2, "cfg_scale": 7.0, "width": 64, "height": 64, "restore_faces": False,
            "tiling": False, "do_not_save_samples": False, "do_not_save_grid": False,
            "negative_prompt": "", "eta": 1.0, "s_min_uncond": 0, "s_churn": 0, "s_tmax": 0,
            "s_tmin": 0, "s_noise": 1, "override_settings": {},
            "override_settings_restore_afterwards": True, "script_args": [], "script_name": None,
            "send_images": True, "save_images": False, "alwayson_scripts": {},
            "sampler_index": "Euler a", "scheduler": None}
st, r = call("/sdapi/v1/txt2img", WEBUIAPI)
info = json.loads(r["info"]) if st == 200 else {}
report(st == 200 and info.get("sampler_name") == "Euler a" and len(r["images"]) == 1,
       "webuiapi's txt2img body is served (sampler_index)", (st, r if st != 200 else ""))
if st == 200:
    body = dict(WEBUIAPI, init_images=[r["images"][0]], resize_mode=0, image_cfg_scale=1.5,
                mask=None, mask_blur=4, inpainting_fill=0, inpaint_full_res=True,
                inpaint_full_res_padding=0, inpainting_mask_invert=False,
                initial_noise_multiplier=1, include_init_images=False, denoising_strength=0.5)
    st, r = call("/sdapi/v1/img2img", body)
    report(st == 200 and len(r["images"]) == 1, "webuiapi's img2img body is served", (st, r if st != 200 else ""))

# Wrong password, no password.
st, _ = call("/sdapi/v1/samplers", auth="user:wrong")
report(st == 401, "a wrong password gets 401", st)
st, _ = call("/sdapi/v1/samplers", auth=None)
report(st == 401, "no password gets 401", st)

# A1111's own field names and errors.
st, r = call("/sdapi/v1/txt2img", {"prompt": "x", "steps": "many"})
report(st == 422 and "steps" in r["detail"], "a wrong type is 422 naming the field", r)
st, r = call("/sdapi/v1/txt2img", {"prompt": "x", "sampler_name": "No Such Sampler"})
report(st == 422 and "sampler_name" in r["detail"], "an unknown sampler is 422", r)
st, r = call("/sdapi/v1/txt2img", {"prompt": "x", "width": 99999, "height": 64})
report(st == 422 and "limit" in r["detail"], "an image past the size cap is 422", r)
st, r = call("/sdapi/v1/txt2img", {"prompt": "x", "init_image": "/etc/passwd"})
report(st == 422 and "init_image" in r["detail"], "a file path field is refused", r)
st, r = call("/sdapi/v1/txt2img", {"prompt": "x", "steps": 2, "width": 64, "height": 64,
                                   "sampler_name": "Euler", "scheduler": "Karras",
                                   "no_such_field": [1, 2], "seed": -1})
info = json.loads(r["info"]) if st == 200 else {}
report(st == 200 and info.get("sampler_name") == "Euler Karras",
       "sampler_name + scheduler map to one sampler; unknown fields are ignored", info.get("sampler_name"))
report(st == 200 and info.get("seed", -1) >= 0, "seed -1 is a random seed", info.get("seed"))
st, r = call("/sdapi/v1/options", {"sd_model_checkpoint": "some-other-model"})
report(st == 422, "switching to a model the server does not have is 422", st)

print("py client: %d failed" % failures)
sys.exit(1 if failures else 0)
