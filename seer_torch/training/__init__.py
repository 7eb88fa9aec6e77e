"""The built-in worker's parts (:mod:`seer_torch.worker` is its entry point and epoch loop).

| module        | what it holds                                                               |
|---------------|-----------------------------------------------------------------------------|
| ``config``    | ``config.json`` as :class:`~seer_torch.training.config.TrialConfig`; imports no torch |
| ``schedule``  | the learning-rate schedule over optimizer steps (``LrSchedule``)            |
| ``checkpoint``| save (atomic, previous kept), check, choose at a relaunch; metrics cut back |
| ``trainer``   | ``DistEnv``, ``Trainer`` (one optimizer step, sharded evaluation), ``build_trainer`` |
| ``probe``     | the profile probe (``--profile-steps``)                                    |

The worker layer: these import nothing from seer_torch except :mod:`seer_torch.errors`,
:mod:`seer_torch.data`, :mod:`seer_torch.models` and :mod:`seer_torch.runfiles`.
"""
