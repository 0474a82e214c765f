"""Where each model role runs on a Ray cluster: the resource settings of `executor: ray` (docs/cluster.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Defaults for the roles other than the generator (classifier, captioner, embedder) when the config leaves
# them unset. The three together take 0.3 of a GPU, so on a one-GPU machine the generator, which does most of
# the work, keeps the other 0.7 in one actor; on more GPUs it gets one actor per whole GPU left.
SMALL_ROLE_GPUS = 0.1
SMALL_ROLE_CPUS = 0.25
GENERATOR_CPUS = 1.0


class RoleResources(BaseModel):
    """Where one model role runs on a Ray cluster. Unset values are chosen from the cluster at start."""

    model_config = ConfigDict(extra="forbid")
    num_gpus: float | None = Field(
        default=None, ge=0, description="GPUs per actor; fractions share one GPU between small models. Default, "
        f"when the cluster has GPUs: {SMALL_ROLE_GPUS:g} for the classifier, captioner and embedder, and for the "
        "generator a whole GPU per actor (the rest of the GPU on a one-GPU cluster); else 0")
    num_cpus: float | None = Field(
        default=None, ge=0, description=f"CPUs per actor. Default: {GENERATOR_CPUS:g} for the generator, "
        f"{SMALL_ROLE_CPUS:g} for the others")
    replicas: int | None = Field(
        default=None, ge=1, description="actors for this role. Default: the generator gets as many as the "
        "cluster's GPUs hold (at least 1), every other role 1")


class RaySettings(BaseModel):
    """Resources per model role on a Ray cluster (`executor: ray`)."""

    model_config = ConfigDict(extra="forbid")
    generator: RoleResources = Field(default_factory=RoleResources)
    classifier: RoleResources = Field(default_factory=RoleResources)
    captioner: RoleResources = Field(default_factory=RoleResources)
    embedder: RoleResources = Field(default_factory=RoleResources)
