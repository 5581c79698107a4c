"""The image protection pipeline: decoding limits, provenance screening, perturbation,
verification, opt-out metadata and renditions.

torch and diffusers are imported only inside this package, lazily, and only by the parts
that perturb or verify; importing ``protect`` itself never loads them.
"""
