"""Interactive explorers for JupyterLab: thin ipywidgets layers over lcteach.viz.

Each ``*_explorer()`` returns an :class:`Explorer`, a VBox that shows its controls, a
line of numbers (``.info``) and the picture (``.output``). Changing a control's value,
by hand or by setting ``.value`` in code, redraws at once. The explorers hold no logic of
their own: the pictures come from lcteach.viz and the numbers from the library.
"""

from lcteach.widgets.chunks import chunk_explorer
from lcteach.widgets.explorer import Controls, Explorer, Render, choice_slider, dropdown, info_line, slider
from lcteach.widgets.patterns import composition_explorer, mask_explorer
from lcteach.widgets.reachability import reachability_explorer
from lcteach.widgets.tiling import tiling_explorer
from lcteach.widgets.windows import window_explorer
