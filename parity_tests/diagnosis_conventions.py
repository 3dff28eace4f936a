"""Diagnosis by re-running the reference changed one way (`variants`): the first layer's channel order,
kernel layout, padding, BatchNorm epsilon, activations, resize conventions, a missing residual, the
refiner's crops. Only the variants whose effect starts where the failure does are tried: the coarse
network's when its outputs are off, the refiner's when only alpha and foreground are.
"""
from typing import Dict, List, Optional

from .diagnosis_core import diagnosis, matches_each, safely
from .variants import (Variant, call, convention_variants, crop_variants, first_image_conv, resize_variants,
                       residual_variants, variant_model, weight_variants)


def variants_for(reference, knobs, stage: str) -> List[Variant]:
    """The variants worth trying when the failure starts at `stage` ("coarse" or "refiner"), cheapest
    and most specific first."""
    model, _ = variant_model(reference.spec, knobs)
    found = weight_variants() + convention_variants() + resize_variants(stage) + residual_variants(model)
    if reference.spec.kind == "refine":
        found += crop_variants()
    return [v for v in found if v.stage in ("any", stage)]


def conventions_step(reference, knobs, probes, got, limits, stage: str) -> Optional[Dict[str, str]]:
    """The first variant that matches the candidate, as a diagnosis, or None."""
    names = reference.names(knobs)
    for variant in variants_for(reference, knobs, stage):
        made = safely(variant_model, reference.spec, knobs, variant)
        if made is None:
            continue
        model, context = made
        if matches_each(lambda probe: call(model, context, probe.src, probe.bgr, names), probes, got, knobs, limits):
            layer = first_image_conv(variant_model(reference.spec, knobs)[0])[0]
            return diagnosis(variant.code, variant.detail.format(layer=layer))
    return None
