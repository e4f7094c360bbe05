"""VT-Refine (bimanual visuo-tactile assembly): the scripted demonstrator, its demonstration dataset and the
renderer of the scene, the point cloud and the taxel images.

Importing this package registers the demonstrator policy ``vtrefine_demo``."""

from taclab.papers.vtrefine import demonstrator  # noqa: F401 - registrations
