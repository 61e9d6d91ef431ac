"""The report's pictures: montage titles fit (no TensorFlow)."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from bank.reports.report import MONTAGE_TITLE_LINES, montage_figure, plot_montage

LONG = [
    "#1 error 0.0831, 4.2x the cut, complexity-corrected z 6.3",
    "/home/someone/data/train/circle/a_really_long_file_name_without_spaces_2024-11-23_0001.png",
    "short",
    "x" * 120,
    "data/foreign/photo of a cat on a sofa in the evening light.jpg",
    "class circle: complexity-corrected z 12.4",
]


@pytest.mark.parametrize("shape", [(28, 28, 1), (40, 120, 3), (120, 40, 1)], ids=["square", "wide", "tall"])
@pytest.mark.parametrize("n", [1, 3, 6])
def test_montage_titles_neither_overlap_nor_are_cut(shape, n, tmp_path):
    x = np.random.default_rng(0).random((n, *shape))
    fig = montage_figure(x, x, LONG[:n])
    renderer = FigureCanvasAgg(fig).get_renderer()
    whole = fig.bbox
    titles = [t for t in fig.texts if not t.get_text().startswith("each pair")]
    assert len(titles) == n
    boxes = [t.get_window_extent(renderer) for t in titles]
    images = [ax.get_window_extent(renderer) for ax in fig.axes]
    for t, box in zip(titles, boxes):
        assert t.get_text().count("\n") < MONTAGE_TITLE_LINES
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, t.get_text()
        assert not any(box.overlaps(im) for im in images), t.get_text()
    for i in range(n):
        for j in range(i + 1, n):
            assert not boxes[i].overlaps(boxes[j]), (LONG[i], LONG[j])
    assert plot_montage(tmp_path / "m.png", x, x, LONG[:n]).stat().st_size > 0


def test_a_long_title_keeps_its_start_and_end():
    x = np.zeros((1, 28, 28, 1))
    name = "start_" + "middle_" * 40 + "the_end.png"
    (title,) = [t.get_text() for t in montage_figure(x, x, [name]).texts if not t.get_text().startswith("each")]
    assert title.startswith("start_") and title.endswith("the_end.png") and "\u2026" in title
