"""What the model, its attention and the tasks share, below all of them: the per-forward context
and its seeds (context.py), the interface of an attention core (attention_core.py) and the
attention settings the config schemas and the attention functions both read (attention_settings.py,
no torch). Nothing is imported here, so the torch-free module can be imported alone."""
