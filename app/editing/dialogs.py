"""Small dialogs for edits that take numbers: move / rotate / scale, brightness, and the floater cleanup
with its preview. Each builds one engine command; the session applies it (one undo step)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QLayout, QPushButton, QVBoxLayout, QWidget,
)

from engine.edit import FloaterOptions, RemoveFloaters, Transform
from engine.edit.transform import rotation_from_euler_degrees


def _spin(value: float, low: float, high: float, step: float, decimals: int = 3, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    return box


def _lay_out_with_ok_cancel(dialog: QDialog, *parts) -> None:
    """Stack layouts and widgets in ``dialog`` above OK / Cancel buttons wired to accept / reject."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    for part in parts:
        (layout.addLayout if isinstance(part, QLayout) else layout.addWidget)(part)
    layout.addWidget(buttons)


def _triple(value: float, low: float, high: float, step: float, suffix: str = "") -> tuple[QWidget, list]:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    boxes = [_spin(value, low, high, step, suffix=suffix) for _ in range(3)]
    for box in boxes:
        layout.addWidget(box)
    return row, boxes


class TransformDialog(QDialog):
    """Move, rotate (x, y, z degrees) and scale the selection about its centre.

    The numeric companion of the on-screen gizmo (exact amounts)."""

    def __init__(self, session, focus: str = "move", parent=None):
        super().__init__(parent)
        self.setWindowTitle("Transform Selection")
        self.session = session
        form = QFormLayout()
        move_row, self.move = _triple(0.0, -1e4, 1e4, 0.05)
        rotate_row, self.rotate = _triple(0.0, -360.0, 360.0, 5.0, suffix="°")
        self.scale = _spin(1.0, 1e-3, 1e3, 0.1)
        form.addRow("Move (x, y, z)", move_row)
        form.addRow("Rotate (x, y, z)", rotate_row)
        form.addRow("Scale", self.scale)
        self.pivot_label = QLabel()
        form.addRow("About", self.pivot_label)
        _lay_out_with_ok_cancel(self, form)
        centre = session.doc.selection_centre() if session.doc is not None else [0, 0, 0]
        self.pivot_label.setText("the selection's centre ({:.3g}, {:.3g}, {:.3g})".format(*centre))
        {"move": self.move[0], "rotate": self.rotate[0], "scale": self.scale}.get(focus, self.move[0]).setFocus()

    def command(self) -> Transform:
        doc = self.session.doc
        return Transform(
            rotation=rotation_from_euler_degrees([b.value() for b in self.rotate]).tolist(),
            scale=float(self.scale.value()),
            shift=[b.value() for b in self.move],
            pivot=doc.selection_centre().tolist() if doc is not None else [0.0, 0.0, 0.0],
        )

    def accept(self) -> None:
        self.session.apply(self.command())
        super().accept()


class _FloaterSignals(QObject):
    done = Signal(object)  # the mask


class _FloaterSearch(QRunnable):
    """Finding floaters takes seconds on a million splats: off the GUI thread. The document keeps the
    result for the arrays it was found on, so Remove with the same settings is then instant."""

    def __init__(self, doc, options: FloaterOptions, signals: _FloaterSignals):
        super().__init__()
        self.doc, self.options, self.signals = doc, options, signals

    def run(self):
        self.signals.done.emit(RemoveFloaters(self.options.to_json()).mask(self.doc))


class FloaterDialog(QDialog):
    """Find floaters (on a worker thread), show them highlighted in the view, then remove them."""

    found = Signal(object)  # the mask a preview found

    def __init__(self, session, show_preview, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Clean Up Floaters")
        self._signals = None
        self._found_for: FloaterOptions | None = None  # the settings the last preview used
        self._remove_when_found = False
        self.session = session
        self._show_preview = show_preview  # callable(mask or None): the viewer highlights it
        defaults = FloaterOptions()
        self.isolation = _spin(defaults.isolation, 1.0, 100.0, 0.5, 2)
        self.max_opacity = _spin(defaults.max_opacity, 0.0, 1.0, 0.05, 2)
        self.far = _spin(defaults.far, 1.0, 1000.0, 1.0, 1)
        form = QFormLayout()
        form.addRow("Isolated: neighbours farther than (x typical)", self.isolation)
        form.addRow("... and opacity below", self.max_opacity)
        form.addRow("Far from everything (x typical)", self.far)
        self.result_label = QLabel("Press Preview to see what would be removed.")
        self.preview_button = QPushButton("Preview")
        self.preview_button.clicked.connect(self.preview)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.apply_button = buttons.addButton("Remove", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview_button)
        layout.addWidget(self.result_label)
        layout.addWidget(buttons)
        self.finished.connect(lambda _: self._show_preview(None))

    def options(self) -> FloaterOptions:
        return FloaterOptions(isolation=self.isolation.value(), max_opacity=self.max_opacity.value(),
                              far=self.far.value())

    def preview(self) -> None:
        """Start looking for floaters; ``found`` (and the label and highlight) follow."""
        if self.session.doc is None:
            return
        self.preview_button.setEnabled(False)
        self.apply_button.setEnabled(False)
        self.result_label.setText("Looking for floaters…")
        self._signals = _FloaterSignals()
        options = self.options()
        self._signals.done.connect(lambda mask: self._found(mask, options))
        QThreadPool.globalInstance().start(_FloaterSearch(self.session.doc, options, self._signals))

    def _found(self, mask, options: FloaterOptions) -> None:
        self._found_for = options
        self.preview_button.setEnabled(True)
        self.apply_button.setEnabled(True)
        count = int(mask.sum())
        self.result_label.setText(f"{count:,} splats would be removed (highlighted)." if count
                                  else "No floaters found with these settings.")
        self._show_preview(mask if count else None)
        self.found.emit(mask)
        if self._remove_when_found:
            self._remove_when_found = False
            self.accept()

    def accept(self) -> None:
        """Remove what the last preview found; without a preview of these settings, look first (on the
        worker) and remove when found, so the GUI thread never runs the search."""
        if self._found_for != self.options():
            self._remove_when_found = True
            self.preview()
            return
        self.session.apply(RemoveFloaters(self.options().to_json()))
        super().accept()


class SelectByDialog(QDialog):
    """Select by base colour, opacity, size, or inside a sphere or box (world units): the engine's
    attribute and volume selections, combined with the selection by the chosen mode."""

    KINDS = (("Colour", "colour"), ("Opacity", "opacity"), ("Size", "size"), ("Sphere", "sphere"), ("Box", "box"))

    def __init__(self, session, parent=None):
        from PySide6.QtWidgets import QColorDialog, QComboBox, QStackedWidget

        super().__init__(parent)
        self.setWindowTitle("Select By")
        self.session = session
        self.kind_box = QComboBox()
        for text, key in self.KINDS:
            self.kind_box.addItem(text, key)
        self.mode_box = QComboBox()
        for text, key in (("Replace", "replace"), ("Add", "add"), ("Remove", "subtract"), ("Intersect", "intersect")):
            self.mode_box.addItem(text, key)
        pages = QStackedWidget()
        self.kind_box.currentIndexChanged.connect(pages.setCurrentIndex)

        def page(*rows):
            widget = QWidget()
            form = QFormLayout(widget)
            for label, field in rows:
                form.addRow(label, field)
            pages.addWidget(widget)

        self.colour = [0.5, 0.5, 0.5]
        self.colour_button = QPushButton("Choose…")

        def choose():
            from PySide6.QtGui import QColor

            picked = QColorDialog.getColor(QColor.fromRgbF(*self.colour), self, "Colour to select")
            if picked.isValid():
                self.colour = [picked.redF(), picked.greenF(), picked.blueF()]

        self.colour_button.clicked.connect(choose)
        self.tolerance = _spin(0.1, 0.0, 1.8, 0.02)
        page(("Colour", self.colour_button), ("Tolerance", self.tolerance))
        self.opacity_min, self.opacity_max = _spin(0.0, 0.0, 1.0, 0.05, 2), _spin(0.1, 0.0, 1.0, 0.05, 2)
        page(("From", self.opacity_min), ("To", self.opacity_max))
        self.size_min, self.size_max = _spin(0.0, 0.0, 1e4, 0.01, 4), _spin(1.0, 0.0, 1e4, 0.01, 4)
        page(("Largest axis from", self.size_min), ("To", self.size_max))
        centre = session.doc.selection_centre() if session.doc is not None and session.num_selected else [0, 0, 0]
        sphere_row, self.sphere_centre = _triple(0.0, -1e4, 1e4, 0.05)
        for box, value in zip(self.sphere_centre, centre):
            box.setValue(float(value))
        self.sphere_radius = _spin(0.5, 0.0, 1e4, 0.05)
        page(("Centre", sphere_row), ("Radius", self.sphere_radius))
        lo_row, self.box_min = _triple(-0.5, -1e4, 1e4, 0.05)
        hi_row, self.box_max = _triple(0.5, -1e4, 1e4, 0.05)
        page(("Min corner", lo_row), ("Max corner", hi_row))

        form = QFormLayout()
        form.addRow("Select by", self.kind_box)
        form.addRow("Mode", self.mode_box)
        _lay_out_with_ok_cancel(self, form, pages)

    def command(self):
        from engine.edit import Select

        kind, mode = self.kind_box.currentData(), self.mode_box.currentData()
        params = {
            "colour": lambda: {"rgb": list(self.colour), "tolerance": self.tolerance.value()},
            "opacity": lambda: {"min": self.opacity_min.value(), "max": self.opacity_max.value()},
            "size": lambda: {"min": self.size_min.value(), "max": self.size_max.value()},
            "sphere": lambda: {"centre": [b.value() for b in self.sphere_centre], "radius": self.sphere_radius.value()},
            "box": lambda: {"min": [b.value() for b in self.box_min], "max": [b.value() for b in self.box_max]},
        }[kind]()
        return Select(kind, params, mode)

    def accept(self) -> None:
        self.session.apply(self.command())
        super().accept()
