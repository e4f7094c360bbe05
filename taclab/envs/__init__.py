"""Gymnasium environments, registered as ``taclab/<Name>-v0`` when taclab is imported."""

from gymnasium.envs.registration import register, registry

ENVS = {
    "taclab/PegInHole-v0": "taclab.envs.peg_in_hole:PegInHoleEnv",
    "taclab/VitalPlug-v0": "taclab.envs.vital:VitalPlugEnv",
    "taclab/VitalUSB-v0": "taclab.envs.vital:VitalUSBEnv",
    "taclab/VitalCard-v0": "taclab.envs.vital:VitalCardEnv",
    "taclab/VitalKey-v0": "taclab.envs.vital:VitalKeyEnv",
    "taclab/VitalPick-v0": "taclab.envs.vital:VitalPickEnv",
    "taclab/BimanualAssembly-v0": "taclab.envs.bimanual:BimanualAssemblyEnv",
}

for _id, _entry in ENVS.items():
    if _id not in registry:
        register(id=_id, entry_point=_entry)
