"""Menu actions and the dialog. Generation runs on a worker thread while a
progress dialog stays responsive; its Cancel button cancels the run."""
import threading

from krita import Extension, Krita
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                             QLineEdit, QMessageBox, QProgressDialog, QSpinBox)

from . import abi, layers


class SettingsDialog(QDialog):
    def __init__(self, s, img2img, parent=None):
        super().__init__(parent)
        self.setWindowTitle("moe-diffuse")
        form = QFormLayout(self)
        self.model = QLineEdit(s.model)
        self.prompt = QLineEdit(s.prompt)
        self.negative = QLineEdit(s.negative)
        self.sampler = QComboBox()
        try:
            self.sampler.addItems(abi.samplers())
        except abi.Error as e:
            QMessageBox.warning(self, "moe-diffuse", str(e))
        self.sampler.setCurrentText(s.sampler)
        self.steps = QSpinBox(minimum=1, maximum=1000, value=s.steps)
        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=30.0, singleStep=0.5, value=s.guidance)
        self.seed = QSpinBox(minimum=-1, maximum=2**31 - 1, value=s.seed)
        self.strength = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05,
                                       value=s.strength)
        rows = [("Model", self.model), ("Prompt", self.prompt), ("Negative", self.negative),
                ("Sampler", self.sampler), ("Steps", self.steps), ("Guidance", self.guidance),
                ("Seed (-1 random)", self.seed)]
        if img2img:
            rows.append(("Strength", self.strength))
        for label, w in rows:
            form.addRow(label, w)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def settings(self):
        return layers.Settings(model=self.model.text(), prompt=self.prompt.text(),
                               negative=self.negative.text(), sampler=self.sampler.currentText(),
                               steps=self.steps.value(), guidance=self.guidance.value(),
                               seed=self.seed.value(), strength=self.strength.value())


class MoeDiffuseExtension(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.last = layers.Settings()

    def setup(self):
        pass

    def createActions(self, window):
        a = window.createAction("moediffuse_txt2img", "moe-diffuse: Text to Layer...", "tools/scripts")
        a.triggered.connect(lambda: self.start(False))
        a = window.createAction("moediffuse_img2img", "moe-diffuse: Image to Image / Inpaint...",
                                "tools/scripts")
        a.triggered.connect(lambda: self.start(True))

    def start(self, img2img):
        app = Krita.instance()
        doc = app.activeDocument()
        if doc is None:
            QMessageBox.information(None, "moe-diffuse", "Open or create a document first.")
            return
        dlg = SettingsDialog(self.last, img2img)
        if dlg.exec_() != QDialog.Accepted:
            return
        self.last = dlg.settings()
        try:
            job = layers.Job(doc, self.last, doc.activeNode() if img2img else None)
        except abi.Error as e:
            QMessageBox.warning(None, "moe-diffuse", str(e))
            return
        self.run_job(job)

    def run_job(self, job):
        bar = QProgressDialog("moe-diffuse: generating", "Cancel", 0, 100)
        bar.setMinimumDuration(0)
        state = {"step": 0, "total": 1, "error": None}

        def progress(stage, step, total):  # on the worker thread: only records
            state["step"], state["total"] = step, max(total, 1)
            return False

        def work():
            try:
                job.run(progress)
            except abi.Error as e:
                state["error"] = e

        worker = threading.Thread(target=work, daemon=True)
        bar.canceled.connect(job.cancel)
        timer = QTimer()

        def poll():
            bar.setValue(int(100 * state["step"] / state["total"]))
            if worker.is_alive():
                return
            timer.stop()
            bar.reset()
            e = state["error"]
            if e is None:
                job.finish()
            elif e.status != abi.ERR_CANCELLED:
                QMessageBox.warning(None, "moe-diffuse", str(e))

        timer.timeout.connect(poll)
        worker.start()
        timer.start(100)
        self._running = (timer, bar, worker)  # kept alive until the next run
