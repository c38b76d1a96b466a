"""SearchMoE: turn a dense GGUF model into a hierarchical heterogeneous MoE (`moesearch-hmoe`), tune it for search.

Steps (one module each): `profile` (FFN activations of the dense parent on calibration text), `moefy` (shared group
+ routed experts of different widths + distilled routers), `train` (routers + LoRA on search tasks), `recipe` (the
small file that ships), `build` (recipe + parent -> `moesearch-hmoe` GGUF), `evaluate` (quality and speed vs the
parent). `model` holds the differentiable transformer these steps share; `cli` the `moesearch tune` commands.
Depends only on `model_runtime`.
"""
