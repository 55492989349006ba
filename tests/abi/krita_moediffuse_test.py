"""Run inside Krita by kritarunner (tests/abi/krita.sh): the plug-in's own
functions make a txt2img layer and an inpainting layer over a selection in
a 64x64 document, and the document is exported to PNG after each."""
import os
import traceback


def run(args):
    model, outdir = args[0], args[1]
    status = []
    try:
        from krita import InfoObject, Krita, Selection

        from moediffuse import abi, layers

        app = Krita.instance()
        app.setBatchmode(True)
        doc = app.createDocument(64, 64, "moediffuse-test", "RGBA", "U8", "", 72.0)
        doc.setBatchmode(True)
        steps = []

        def progress(stage, step, total):
            if stage == abi.STAGE_DENOISE:
                steps.append(step)
            return False

        s = layers.Settings(model=model, prompt="a red circle", steps=4, seed=42, sampler="ddim")
        base = layers.txt2img(doc, s, progress)
        doc.waitForDone()
        status.append(f"txt2img steps={steps}")
        if not doc.exportImage(os.path.join(outdir, "txt2img.png"), InfoObject()):
            raise RuntimeError("exporting txt2img.png failed")

        sel = Selection()
        sel.select(0, 0, 32, 32, 255)
        doc.setSelection(sel)
        s2 = layers.Settings(model=model, prompt="a blue square", steps=8, seed=1,
                             sampler="euler", strength=0.8)
        layer = layers.img2img(doc, base, s2)
        doc.waitForDone()
        if not doc.exportImage(os.path.join(outdir, "inpaint.png"), InfoObject()):
            raise RuntimeError("exporting inpaint.png failed")
        names = [n.name() for n in doc.topLevelNodes()]
        status.append(f"layers={names}")
        params = bytes(doc.annotation(layers.PARAMETERS)).decode() \
            if hasattr(doc, "annotation") else ""
        status.append("parameters=" + params.replace("\n", " | "))
        status.append("new layer: " + layer.name())
        status.append("ok")
    except Exception:
        status.append(traceback.format_exc())
    with open(os.path.join(outdir, "status.txt"), "w") as f:
        f.write("\n".join(status) + "\n")
