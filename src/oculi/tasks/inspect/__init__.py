"""Industrial inspection: learn good parts from images, flag and locate what differs.

A PatchCore-style anomaly detector (Roth et al., "Towards Total Recall in Industrial Anomaly
Detection", CVPR 2022) over the built-in backbone's mid-level patch features
(``oculi.perception.patches``), with a bounded streaming coreset (``coreset``), a threshold
calibrated on held-out good images only (``fit``), and regions described from measured image
properties (``regions``). ``evaluate`` reads the MVTec AD folder layout.

Example:
    >>> from oculi.tasks.inspect import fit_inspector, inspect_images  # doctest: +SKIP
    >>> card = fit_inspector("bottles/good", "bottle-line", settings=Settings())  # doctest: +SKIP
    >>> [r.finding for r in inspect_images(["b1.png"], "bottle-line", settings=Settings())]  # doctest: +SKIP
"""

from oculi.tasks.inspect.fit import fit_inspector
from oculi.tasks.inspect.model import load_inspector
from oculi.tasks.inspect.results import SCHEMA, DefectRegion, InspectorCard, InspectResult
from oculi.tasks.inspect.run import inspect_image, inspect_images

__all__ = ["SCHEMA", "DefectRegion", "InspectResult", "InspectorCard", "fit_inspector", "inspect_image",
           "inspect_images", "load_inspector"]
