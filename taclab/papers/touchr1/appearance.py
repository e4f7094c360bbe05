"""The visual image of an object, rendered by MuJoCo, and the appearance cues it carries.

An object is shown as a flattened dome on a table under a fixed camera. Its look is made from *apparent* levels
of the four properties:

- hardness: soft objects are pale, saturated foam colours; hard ones greyish and reflective;
- roughness: smooth objects are glossy (high specular, shininess), rough ones matte with speckle;
- bumpiness: a checker texture whose cell size follows the bump spacing and whose contrast follows the bump height
  (flat objects have none);
- friction: grippy objects are dark (rubber-like), slippery ones light.

Usually the apparent levels are the true ones, so appearance agrees with touch. In the **conflict subset** one
property's apparent level is mirrored (``6 - level``, and pushed at least two levels away): the object looks, for
example, glossy but is rough. Nuisance (hue, camera azimuth, light) is drawn per object.
"""

from __future__ import annotations

import colorsys

import mujoco
import numpy as np

from taclab.papers.touchr1.objects import LEVELS, PROPERTIES

IMAGE_SIZE = 64


def conflicting_levels(levels: tuple[int, ...], prop: str) -> tuple[int, ...]:
    """Apparent levels where ``prop`` looks at least two levels away from its true level."""
    i = PROPERTIES.index(prop)
    true = levels[i]
    fake = LEVELS + 1 - true
    if abs(fake - true) < 2:
        fake = true + 2 if true + 2 <= LEVELS else true - 2
    out = list(levels)
    out[i] = fake
    return tuple(out)


TEX = 64


def _template() -> mujoco.MjSpec:
    spec = mujoco.MjSpec()
    spec.modelname = "touchr1_object"
    spec.visual.quality.shadowsize = 0
    spec.visual.global_.offwidth = IMAGE_SIZE
    spec.visual.global_.offheight = IMAGE_SIZE
    spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    spec.visual.headlight.specular = [0.3, 0.3, 0.3]
    spec.add_texture(name="table", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
                     rgb1=[0.55, 0.5, 0.45], rgb2=[0.5, 0.45, 0.4], width=16, height=16)  # fmt: skip
    spec.add_material(name="table", textures=["", "table"], rgba=[1, 1, 1, 1])
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.2, 0.2, 0.01], material="table")
    spec.add_texture(name="obj", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_FLAT,
                     rgb1=[0.5, 0.5, 0.5], rgb2=[0.5, 0.5, 0.5], width=TEX, height=TEX)  # fmt: skip
    spec.add_material(name="obj", textures=["", "obj"], rgba=[1, 1, 1, 1])
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_ELLIPSOID, size=[0.04, 0.04, 0.018], material="obj")
    spec.worldbody.add_camera(name="cam", pos=[0.11, 0, 0.09], fovy=50)
    spec.worldbody.add_light(name="key", pos=[0, 0, 0.3], dir=[0, 0, -1], diffuse=[0.6, 0.6, 0.6],
                             specular=[0.6, 0.6, 0.6])  # fmt: skip
    return spec


class ObjectRenderer:
    """Renders objects from apparent levels; one compiled scene and GL context, re-dressed per object."""

    def __init__(self):
        self.model = _template().compile()
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, IMAGE_SIZE, IMAGE_SIZE)
        m = self.model
        self._mat = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, "obj")
        self._tex = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_TEXTURE, "obj")
        self._cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, "cam")
        self._light = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_LIGHT, "key")

    def close(self) -> None:
        self.renderer.close()

    def render(self, apparent: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """(IMAGE_SIZE, IMAGE_SIZE, 3) uint8 image of an object with the given apparent levels."""
        from taclab.sim.builders import look_at

        m = self.model
        h, r, b, f = ((v - 1) / (LEVELS - 1) for v in apparent)
        hue = float(rng.uniform())
        sat = 0.75 - 0.6 * h  # soft: saturated foam colours; hard: greyish
        val = 0.95 - 0.6 * f  # slippery: light; grippy: dark
        base = np.array(colorsys.hsv_to_rgb(hue, sat, val))
        # texture: checker cells (bumps; bigger bumps, bigger cells, more contrast) and speckle (roughness)
        cells = int(round(8 - 5 * b)) if b > 0 else 1
        yy, xx = np.mgrid[0:TEX, 0:TEX]
        check = ((yy * cells // TEX + xx * cells // TEX) % 2).astype(float) if b > 0 else np.zeros((TEX, TEX))
        shade = 1 - 0.5 * b * check
        speck = rng.uniform(size=(TEX, TEX)) < 0.02 + 0.35 * r
        shade = shade * np.where(speck, 0.6, 1.0)
        tex = np.clip(base[None, None, :] * shade[..., None], 0, 1)
        adr = m.tex_adr[self._tex]
        m.tex_data[adr : adr + TEX * TEX * 3] = (tex * 255).astype(np.uint8).reshape(-1)
        m.mat_texrepeat[self._mat] = [2, 2]
        m.mat_specular[self._mat] = 0.9 - 0.85 * r
        m.mat_shininess[self._mat] = 0.95 - 0.9 * r
        m.mat_reflectance[self._mat] = 0.25 * h * (1 - r)
        az = float(rng.uniform(-0.6, 0.6))
        eye = np.array([0.11 * np.cos(az), 0.11 * np.sin(az), 0.09])
        m.cam_pos[self._cam] = eye
        xy = np.asarray(look_at(eye, (0, 0, 0.005))).reshape(2, 3)
        z = np.cross(xy[0], xy[1])
        mat = np.stack([xy[0], xy[1], z], axis=1).reshape(-1)
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, mat)
        m.cam_quat[self._cam] = q
        d = rng.normal(size=3) * 0.3 + np.array([0.0, 0.0, -1.0])
        m.light_dir[self._light] = d / np.linalg.norm(d)
        mujoco.mj_forward(m, self.data)
        mujoco.mjr_uploadTexture(m, self.renderer._mjr_context, self._tex)
        self.renderer.update_scene(self.data, camera="cam")
        return self.renderer.render().copy()
