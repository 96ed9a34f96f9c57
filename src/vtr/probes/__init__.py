"""Instruments that look inside a demo model, with labels the demo world gives for free.

Retrieval recall says whether a model ranks the right clip first, not what its features hold. The
demo generator knows every scene (``data_modules.demo.truth``), so these measure it directly:

    linear.py     a closed-form ridge classifier in float64 and its (balanced) accuracy
    clips.py      held-out clips rendered through the test-time pipeline, with per-patch labels
    features.py   frozen patch tokens of the final and a middle block, and their joint-space projection
    patch.py      the patch probe: shape kind and colour read linearly off one patch's token
    grounding.py  the grounding probe: does the patch most similar to "a red shape" lie on the red one
    errors.py     per-attribute error analysis of failed text-to-video queries
"""
