"""The explorer every widget is: controls, an info line and a picture that redraws on change."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from html import escape

import ipywidgets as widgets
from matplotlib.figure import Figure

Render = Callable[..., tuple[Figure, str]]


Controls = dict[str, widgets.ValueWidget]


Sync = Callable[[Controls], str | None]


NOTE_COLOR, ERROR_COLOR = "#975a16", "#c53030"


def png_output(figure: Figure) -> dict:
    """``figure`` as one output of an ipywidgets.Output: a display_data bundle with a PNG (base64)."""
    png = getattr(figure, "_repr_png_", None)
    if png is None:  # a plain matplotlib Figure: the same PNG as lcteach's NotebookFigure makes
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        data = buffer.getvalue()
    else:
        data = png()
    return {
        "output_type": "display_data",
        "data": {"image/png": base64.b64encode(data).decode("ascii"), "text/plain": repr(figure)},
        "metadata": {},
    }


class Explorer(widgets.VBox):
    """Controls, an info line and a picture; redraws whenever a control's value changes.

    ``controls`` maps names to widgets; ``render(**values)`` returns (Figure, info HTML).
    ``sync(controls)``, if given, adjusts dependent controls (limits, options, enabled state)
    before each redraw; changes it makes do not trigger redraws of their own. When it changes
    a value the user set (lowers a value to a new maximum, say), it returns a sentence saying
    so, which the info line shows with the picture; otherwise None.
    Attributes: ``controls``, ``output`` (ipywidgets.Output: the picture, ``output.outputs``
    holds it as one PNG), ``info`` (ipywidgets.HTML), ``figure`` (the last Figure drawn;
    None while the values are invalid), ``note`` (the last sentence of ``sync``, or None).

    A ValueError from ``render`` (an impossible combination of values, e.g. an even symmetric
    window) is shown as a message in ``info`` instead of a picture: the old picture is removed,
    so that it is never mistaken for the new values'.
    """

    def __init__(self, controls: Controls, render: Render, sync: Sync | None = None):
        self.controls = dict(controls)
        self.output = widgets.Output()
        self.info = widgets.HTML()
        self.figure: Figure | None = None
        self.note: str | None = None
        self._render, self._sync, self._syncing = render, sync, False
        bar = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([bar, self.info, self.output])
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self._changed()

    @property
    def values(self) -> dict[str, object]:
        return {name: control.value for name, control in self.controls.items()}

    def _changed(self, change=None) -> None:
        if self._syncing:
            return
        if self._sync is not None:
            self._syncing = True
            try:
                self.note = self._sync(self.controls)
            finally:
                self._syncing = False
        self.redraw()

    def redraw(self) -> None:
        """Render the current values: new figure and info, the old figure closed. Invalid
        values leave only the message: no picture."""
        old = self.figure
        try:
            self.figure, info = self._render(**self.values)
        except ValueError as error:  # the library's message says what is wrong and why
            self.figure = None
            info = f'<span style="color:{ERROR_COLOR}">Cannot draw this: {escape(str(error))}</span>'
        if self.note:
            info += f'<br><span style="color:{NOTE_COLOR}">{escape(self.note)}</span>'
        self.info.value = info
        # One assignment replaces the picture (or removes it): no flicker, and no stale picture
        # under an error message.
        self.output.outputs = () if self.figure is None else (png_output(self.figure),)
        if old is not None:
            import matplotlib.pyplot as plt  # here, so that importing lcteach does not import pyplot

            plt.close(old)  # frees it if pyplot manages it; lcteach.viz figures are freed when dropped anyway


def slider(name: str, value: int, low: int, high: int, step: int = 1) -> widgets.IntSlider:
    return widgets.IntSlider(
        value=value,
        min=low,
        max=max(high, value),
        step=step,
        description=name,
        continuous_update=False,
        style={"description_width": "initial"},
    )


def choice_slider(name: str, options: Sequence[int], value: int) -> widgets.SelectionSlider:
    """A slider that offers only ``options`` (e.g. the block sizes that divide n)."""
    options = list(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value}")
    return widgets.SelectionSlider(
        options=options,
        value=value,
        description=name,
        continuous_update=False,
        style={"description_width": "initial"},
    )


def dropdown(name: str, options, value) -> widgets.Dropdown:
    return widgets.Dropdown(
        options=list(options), value=value, description=name, style={"description_width": "initial"}
    )


def info_line(*items: tuple[str, str]) -> str:
    return " &nbsp;·&nbsp; ".join(f"{label}: <b>{value}</b>" for label, value in items)
