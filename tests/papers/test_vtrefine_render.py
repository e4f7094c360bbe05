"""The VT-Refine figures: the scene, the point cloud with its tactile points, the taxel images."""

from PIL import Image

from taclab.papers.vtrefine.render import render_scene


def test_render_scene_writes_three_figures(tmp_path):
    paths = render_scene(tmp_path, seed=0)
    assert [p.name for p in paths] == ["bimanual_scene.png", "bimanual_point_cloud.png", "bimanual_taxels.png"]
    scene = Image.open(paths[0])
    assert scene.size == (3 * 640, 480)  # start, both parts lifted, end
    for p in paths[1:]:
        assert Image.open(p).size[0] > 300
