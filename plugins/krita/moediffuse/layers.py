"""The plug-in's work on Krita documents, without any UI: a generated
layer from a prompt (txt2img), or a reworked copy of a layer (img2img),
repainting only the selection when there is one (inpainting). The menu
actions and the headless test both call these."""
import os
import random

from PyQt5.QtCore import QByteArray, Qt
from PyQt5.QtGui import QImage

from . import abi

PARAMETERS = "moediffuse-parameters"


class Settings:
    def __init__(self, **kw):
        self.model = os.environ.get("MOEDIFFUSE_MODEL", "")
        self.prompt = ""
        self.negative = ""
        self.sampler = "dpmpp_2m_karras"
        self.steps = 20
        self.guidance = 7.5
        self.seed = -1        # -1: a random seed
        self.strength = 0.75  # img2img and inpainting
        self.__dict__.update(kw)


def _check_document(doc):
    if doc.colorModel() != "RGBA" or doc.colorDepth() != "U8":
        raise abi.Error(-5, "moe-diffuse needs an 8-bit RGBA document "
                            f"(this one is {doc.colorModel()}/{doc.colorDepth()})")


def _round(n, m):
    return max(m, n // m * m)


def _parameters(s, seed, w, h, extra=""):
    """AUTOMATIC1111's parameter text, so a result can be reproduced."""
    return (f"{s.prompt}\nNegative prompt: {s.negative}\nSteps: {s.steps}, Sampler: {s.sampler}, "
            f"CFG scale: {s.guidance:g}, Seed: {seed}, Size: {w}x{h}, Model: {s.model}{extra}")


def _bgra(rgb, w, h, width, height):
    """RGB bytes (w x h) -> Krita's RGBA/U8 pixel layout (B, G, R, A) at width x height."""
    img = QImage(rgb, w, h, 3 * w, QImage.Format_RGB888)
    if (w, h) != (width, height):
        img = img.scaled(width, height, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
    img = img.convertToFormat(QImage.Format_ARGB32)  # B, G, R, A in memory on little-endian
    return bytearray(img.constBits().asstring(img.sizeInBytes()))


def _rgba(bgra, w, h):
    """Krita's B, G, R, A pixels -> R, G, B, A bytes."""
    img = QImage(bytes(bgra), w, h, 4 * w, QImage.Format_ARGB32)
    img = img.convertToFormat(QImage.Format_RGBA8888)
    return img.constBits().asstring(img.sizeInBytes())


class Job:
    """One generation for a document, in three steps: the constructor reads
    the document (GUI thread), run() generates (any thread; cancel() from
    another), finish() adds the layer (GUI thread)."""

    def __init__(self, doc, s, node=None):
        _check_document(doc)
        self.doc, self.s, self.node = doc, s, node
        self.W, self.H = doc.width(), doc.height()
        self.init = self.mask = None
        if node is not None:
            self.init = (_rgba(node.pixelData(0, 0, self.W, self.H), self.W, self.H),
                         self.W, self.H, 4)
            sel = doc.selection()
            if sel is not None and sel.width() > 0 and sel.height() > 0:
                self.mask = (bytes(sel.pixelData(0, 0, self.W, self.H)), self.W, self.H, 1)
        self.seed = s.seed if s.seed >= 0 else random.randrange(2**31)
        self.model = None
        self.result = None
        self.cancelled = False

    def run(self, progress=None):
        s = self.s

        def report(stage, step, total):  # a cancel before the model was loaded lands here
            return self.cancelled or (progress is not None and progress(stage, step, total))

        self.model = abi.Model(s.model)
        try:
            m = self.model.info().size_multiple
            self.result = self.model.generate(
                s.prompt, s.negative, s.steps, s.guidance, self.seed, s.sampler,
                _round(self.W, m), _round(self.H, m), self.init, self.mask, s.strength, report)
        finally:
            model, self.model = self.model, None
            model.close()

    def cancel(self):
        """Callable from any thread."""
        self.cancelled = True
        model = self.model
        if model is not None:
            model.cancel()

    def finish(self):
        rgb, w, h = self.result
        s, doc = self.s, self.doc
        pixels = _bgra(rgb, w, h, self.W, self.H)
        extra = ""
        if self.init is not None:
            extra = f", Denoising strength: {s.strength:g}"
        if self.mask is not None:  # outside the selection the layer below shows through
            pixels[3::4] = self.mask[0]
            extra += ", Inpaint: selection"
        name = f"moe-diffuse: {s.prompt[:60]} (seed {self.seed})"
        params = _parameters(s, self.seed, w, h, extra)
        if self.node is None:
            return _add_layer(doc, doc.rootNode(), None, name, pixels, params)
        return _add_layer(doc, self.node.parentNode(), self.node, name, pixels, params)


def _add_layer(doc, parent, above, name, pixels, params):
    layer = doc.createNode(name, "paintlayer")
    layer.setPixelData(QByteArray(bytes(pixels)), 0, 0, doc.width(), doc.height())
    parent.addChildNode(layer, above)
    if hasattr(doc, "setAnnotation"):  # the document keeps the last parameters
        doc.setAnnotation(PARAMETERS, "moe-diffuse generation parameters",
                          QByteArray(params.encode()))
    doc.refreshProjection()
    return layer


def txt2img(doc, s, progress=None):
    """A new top layer, the size of the document, generated from s.prompt."""
    job = Job(doc, s)
    job.run(progress)
    return job.finish()


def img2img(doc, node, s, progress=None):
    """A new layer above `node`: node reworked from s.prompt; with a selection,
    only the selected area is repainted and the rest of the new layer is clear."""
    job = Job(doc, s, node)
    job.run(progress)
    return job.finish()
