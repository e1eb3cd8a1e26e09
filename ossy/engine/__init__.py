"""The engine: token ids in, token ids out (it never sees text).

Owns nothing itself; its modules are `ossy.engine.protocol` (the contract with the server,
importable without torch), `ossy.engine.scheduler.LocalEngine` (the continuously batching engine),
`ossy.engine.decode` (`generate`, the plain loop behind `ossy.api.Model.generate`) and
`ossy.engine.sampling`. Nothing is re-exported here, so importing the protocol never loads torch.
Does not own: the model (`ossy.model`), tokenizing or chat formats.
"""
