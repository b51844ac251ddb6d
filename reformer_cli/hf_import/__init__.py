"""`reformer import hf PATH`: a saved HuggingFace transformers Reformer (config.json + weights) as a
run folder of this project (docs/hf-import.md).

* `hf_config.py`: config.json -> the `reformer run` overrides that describe the same model (no torch);
  a setting this project cannot express is one line naming it.
* `safetensors_file.py`: a .safetensors file read with torch alone (transformers is not needed).
* `weights.py`: transformers' parameter names and layouts -> this project's state dict.
* `importer.py`: compose the config, load the weights into the model, write config.yaml and a
  checkpoint as `reformer run` writes them.
"""
