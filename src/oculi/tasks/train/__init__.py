"""``oculi train``: adapt oculi to the user's own data.

- ``classifier``: a head over visual features from a folder-per-class data set; its verdict
  joins every observation (caption, ask, classify, search use it).
- ``adapter``: a contrastive projection from text vectors into the visual feature space, from
  image-caption pairs; search uses it for text → image.
- ``vqa``: image features + question embedding → one of the training answers (``ask``).
- ``lora``: a peft LoRA adapter for a transformers vision-language model (for a GPU).

Every trainer reads its data through ``data`` (refusing what it cannot use, with reasons),
caches image features (``features``), trains through one loop with checkpoints and resume
(``loop``), measures on a held-out split (``metrics``) and stores a versioned, checksummed
model (``oculi.store.trained``).
"""
