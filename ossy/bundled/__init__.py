"""The models that ship inside the ossy package, as package data: `ossy/bundled/<name>/` holds a
gpt-oss checkpoint plus the Modelfile it is created from. No code: the store installs them
(`ossy.store.bundled`).

nano: a demo-sized model with the gpt-oss architecture (MoE with MXFP4 experts, sinks, sliding
and full attention, YaRN) and its own small tokenizer, trained by `ossy train` on synthetic
harmony conversations. It is not gpt-oss-20b: it knows a fact table, works sums column by column
(mostly wrongly), and calls the fs, shell and system tools.
"""
