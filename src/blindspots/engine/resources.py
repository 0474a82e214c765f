"""Where each model role runs on a Ray cluster: the resource settings of `executor: ray` (docs/cluster.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RoleResources(BaseModel):
    """Where one model role runs on a Ray cluster. Unset values are chosen from the cluster at start."""

    model_config = ConfigDict(extra="forbid")
    num_gpus: float | None = Field(
        default=None, ge=0, description="GPUs per actor; fractions share one GPU between small models. Default: "
        "1 for the generator and 0.25 for the others when the cluster has GPUs, else 0")
    num_cpus: float | None = Field(
        default=None, ge=0, description="CPUs per actor. Default: 1 for the generator, 0.25 for the others")
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
