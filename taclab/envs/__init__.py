"""Gymnasium environments, registered as ``taclab/<Name>-v0`` when taclab is imported."""

from gymnasium.envs.registration import register, registry

ENVS = {"taclab/PegInHole-v0": "taclab.envs.peg_in_hole:PegInHoleEnv"}

for _id, _entry in ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry)
