"""VT-Refine (bimanual visuo-tactile assembly): the scripted demonstrator, its demonstration datasets and the
figures of the scene, the point cloud and the taxel images.

Importing this package registers the demonstrator policy ``vtrefine_demo`` and the dataset generator
``vtrefine`` with its learning spec."""

from taclab.papers.vtrefine import dataset, demonstrator, learning  # noqa: F401 - registrations
