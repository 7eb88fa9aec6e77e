"""Policies by name: ``POLICIES[name]()`` returns a fresh policy object (call ``setup`` next).

The one registry: the CLI and the simulator look policies up here (``--policy sha``), and the
every-policy tests iterate it, SEER included. Every factory takes no arguments; everything a
policy needs comes through :class:`~seer_torch.policies.base.PolicyContext`.
"""

from __future__ import annotations

from collections.abc import Callable

from seer_torch.errors import ConfigError
from seer_torch.policies.base import Policy
from seer_torch.policies.baselines import (
    AshaPolicy,
    ElasticShaPolicy,
    ElasticUniformPolicy,
    HyperbandPolicy,
    OraclePolicy,
    ShaPolicy,
)
from seer_torch.policies.seer_policy import SeerPolicy

__all__ = ["POLICIES", "POLICY_NAMES", "make_policy"]

#: Every policy by name, SEER first (the order of ``POLICY_NAMES`` and of reports).
POLICIES: dict[str, Callable[[], Policy]] = {
    "seer": SeerPolicy,
    "sha": ShaPolicy,
    "hyperband": HyperbandPolicy,
    "asha": AshaPolicy,
    "elastic-sha": ElasticShaPolicy,
    "elastic-uniform": ElasticUniformPolicy,
    "oracle": OraclePolicy,
}

#: The registry's names in order.
POLICY_NAMES: tuple[str, ...] = tuple(POLICIES)


def make_policy(name: str) -> Policy:
    """A fresh policy called ``name``.

    Raises:
        ConfigError: ``name`` is not in :data:`POLICIES`.
    """
    factory = POLICIES.get(name)
    if factory is None:
        raise ConfigError("policy", name, "one of " + ", ".join(sorted(POLICIES)))
    return factory()
