"""The explorer every widget is: controls, an info line and a picture that redraws on change."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

import ipywidgets as widgets
from IPython.display import clear_output, display
from matplotlib.figure import Figure

Render = Callable[..., tuple[Figure, str]]


Controls = dict[str, widgets.ValueWidget]


class Explorer(widgets.VBox):
    """Controls, an info line and a picture; redraws whenever a control's value changes.

    ``controls`` maps names to widgets; ``render(**values)`` returns (Figure, info HTML).
    ``sync(controls)``, if given, adjusts dependent controls (limits, enabled state)
    before each redraw; changes it makes do not trigger redraws of their own.
    Attributes: ``controls``, ``output`` (ipywidgets.Output), ``info`` (ipywidgets.HTML),
    ``figure`` (the last Figure drawn; None while the values are invalid).

    A ValueError from ``render`` (an impossible combination of values, e.g. a block size
    that does not divide n) is shown as a message in ``info`` instead of a picture.
    """

    def __init__(self, controls: Controls, render: Render, sync: Callable[[Controls], None] | None = None):
        self.controls = dict(controls)
        self.output = widgets.Output()
        self.info = widgets.HTML()
        self.figure: Figure | None = None
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
                self._sync(self.controls)
            finally:
                self._syncing = False
        self.redraw()

    def redraw(self) -> None:
        """Render the current values: new figure and info, the old figure closed."""
        old = self.figure
        try:
            self.figure, self.info.value = self._render(**self.values)
        except ValueError as error:  # the library's message says what is wrong and why
            self.figure = None
            self.info.value = f'<span style="color:#c53030">Cannot draw this: {escape(str(error))}</span>'
        with self.output:
            clear_output(wait=True)
            if self.figure is not None:
                display(self.figure)
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


def dropdown(name: str, options, value) -> widgets.Dropdown:
    return widgets.Dropdown(
        options=list(options), value=value, description=name, style={"description_width": "initial"}
    )


def info_line(*items: tuple[str, str]) -> str:
    return " &nbsp;·&nbsp; ".join(f"{label}: <b>{value}</b>" for label, value in items)
