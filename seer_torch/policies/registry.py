"""Policies by name: ``POLICIES[name]()`` returns a fresh policy object (call ``setup`` next).

The executor and the CLI look policies up here (``--policy sha``). Every factory takes no
arguments; everything a policy needs comes through :class:`~seer_torch.policies.base.PolicyContext`.
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

__all__ = ["POLICIES", "make_policy"]

POLICIES: dict[str, Callable[[], Policy]] = {
    "sha": ShaPolicy,
    "hyperband": HyperbandPolicy,
    "asha": AshaPolicy,
    "elastic-sha": ElasticShaPolicy,
    "elastic-uniform": ElasticUniformPolicy,
    "oracle": OraclePolicy,
}


def make_policy(name: str) -> Policy:
    """A fresh policy called ``name``.

    Raises:
        ConfigError: ``name`` is not in :data:`POLICIES`.
    """
    factory = POLICIES.get(name)
    if factory is None:
        raise ConfigError("policy", name, "one of " + ", ".join(sorted(POLICIES)))
    return factory()
