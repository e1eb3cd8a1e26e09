"""Training ossy's own small gpt-oss model (nano), from nothing, on this machine.

Owns: the synthetic harmony data (`data`, `facts`), the tokenizer (`tokenizer`), the trainable
model over the engine's math (`model`), the training loop (`trainer`) and the checkpoint writer
(`export`). `python -m ossy.train` / `ossy train` run it. Does not own: the model math
(`ossy.model`), harmony (`ossy.harmony`) or the bundled copy (`ossy.bundled`).
"""
