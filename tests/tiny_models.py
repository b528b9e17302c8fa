"""Tiny random-weight models built from configs, saved as ordinary model folders.

No hub download: tokenizers are built from a word list with ``tokenizers`` (WordLevel),
processors from their classes with small sizes. The folders load through the same
``from_pretrained`` path a user's real model folder takes.

- ``build_tiny_clip``: a CLIPModel (hidden 32, 1 layer, 32 px images, 16-d projection) + processor;
- ``build_tiny_llava``: a LlavaForConditionalGeneration (CLIP vision tower + Llama, hidden 32) +
  LlavaProcessor with a chat template;
- ``build_tiny_siglip``: a SiglipModel + SiglipProcessor (text padded to 16 tokens);
- ``build_tiny_sd``: a StableDiffusionPipeline (UNet2DConditionModel, AutoencoderKL, CLIPTextModel,
  DDIM scheduler), 16 px images.
"""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "<pad>", "<s>", "</s>", "<unk>", "<image>", "user", "assistant", "system", ":",
    "a", "an", "the", "photo", "of", "image", "this", "is", "what", "how", "many", "describe", "in", "one", "sentence",
    "colour", "color", "red", "green", "blue", "white", "black", "cat", "dog", "car", "bicycle", "brick", "wall",
    "against", "person", "people", "there", "are", "and", "it", "which", "larger", "compare", "these", "?", ".", ",",
    "reply", "with", "json", "object", "nothing", "else", "short", "paragraph", "objects", "text", "colours", "setting",
    "be", "exact", "yes", "no", "two", "three", "square", "circle", "stripe",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %} <image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}"
    " . {% endfor %}{% if add_generation_prompt %}assistant :{% endif %}"
)


def word_tokenizer(max_length: int = 64, *, bos_eos: bool = False):
    """A PreTrainedTokenizerFast over ``WORDS`` (whitespace + punctuation split)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    if bos_eos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", model_max_length=max_length)
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return fast


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=32, bos_token_id=1, eos_token_id=2, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(cfg).eval()
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                         tokenizer=word_tokenizer(32, bos_eos=True))
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def build_tiny_llava(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = word_tokenizer(256)
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                          tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          chat_template=CHAT_TEMPLATE)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(WORDS) + 1, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                                pad_token_id=0, bos_token_id=1, eos_token_id=2),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default", vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # never end a reply at once: random weights would often pick </s> first
        model.lm_head.weight[2].fill_(0.0)
    model.generation_config.pad_token_id = 0
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def build_tiny_sd(folder: Path, seed: int = 0, *, vae_attention: bool = True) -> Path:
    """``vae_attention=False``: a VAE without its mid-block attention, so each output pixel depends on
    its neighbourhood only (what an edit-inside-a-mask test needs to see the unmasked part kept)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, max_position_embeddings=16, bos_token_id=1, eos_token_id=2,
                                                pad_token_id=0))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                        norm_num_groups=8, sample_size=16, mid_block_add_attention=vae_attention)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=word_tokenizer(16, bos_eos=True), unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def build_tiny_siglip(folder: Path, seed: int = 0) -> Path:
    """A SiglipModel (hidden 32, 1 layer, 32 px images) + SiglipProcessor; text padded to 16 tokens."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    cfg = SiglipConfig(
        text_config=dict(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=16, pad_token_id=0, bos_token_id=1, eos_token_id=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8),
    )
    torch.manual_seed(seed)
    model = SiglipModel(cfg).eval()
    proc = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=word_tokenizer(16))
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


# --- the VLM families users bring (transformers backend) --------------------------------------------
# Each is a real architecture at toy size (hidden 32, 1 layer, a 32 px vision tower), saved the way its
# hub folder is laid out, so the backend loads it through AutoProcessor/AutoModelForImageTextToText.

def _tokenizer_with(special: list[str], max_length: int = 1024, *, bos_eos: bool = False):
    tok = word_tokenizer(max_length, bos_eos=bos_eos)
    tok.add_special_tokens({"additional_special_tokens": ["<image>", *special]})
    return tok


def _words_only(model, tok) -> None:
    """Random weights often pick the end token first, or a special token that decodes to nothing; forbid
    the end token at the first step and the other special tokens always (the generation config saved
    with the folder), so every reply has words."""
    specials = sorted({tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens} - {tok.eos_token_id})
    model.generation_config.begin_suppress_tokens = [tok.eos_token_id]
    model.generation_config.suppress_tokens = specials
    model.generation_config.pad_token_id = tok.pad_token_id


QWEN_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
# Qwen2-VL's own template at its core: each image becomes <|vision_start|><|image_pad|><|vision_end|>,
# which the processor widens to one <|image_pad|> per merged 2x2 patch group.
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)


def build_tiny_qwen2_vl(folder: Path, seed: int = 0, *, version: str = "2") -> Path:
    """A Qwen2-VL (``version="2"``) or Qwen2.5-VL (``"2.5"``): patch 4, merge 2 (one image token per 8x8
    pixels), images held to 64x64 pixels by the image processor's own ``max_pixels``. Saved as the hub
    folders are (image processor, tokenizer, chat_template.jinja, no processor_config): transformers'
    Qwen2VLProcessor also wants a video processor, which needs torchvision; the backend builds it without."""
    import torch
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = _tokenizer_with(QWEN_TOKENS)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_TOKENS}
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
    special = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                   vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if version == "2":
        from transformers import Qwen2VLConfig as Config, Qwen2VLForConditionalGeneration as Model

        vision = dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=4, spatial_merge_size=2,
                      temporal_patch_size=2)
    else:
        from transformers import Qwen2_5_VLConfig as Config, Qwen2_5_VLForConditionalGeneration as Model

        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=4,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=16, fullatt_block_indexes=[1])
    torch.manual_seed(seed)
    model = Model(Config(vision_config=vision, text_config=text, **special)).eval()
    _words_only(model, tok)
    model.save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=8 * 8, max_pixels=64 * 64, patch_size=4, temporal_patch_size=2,
                             merge_size=2).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(QWEN_TEMPLATE)
    return folder


IDEFICS_TOKENS = ["<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]
# Idefics3/SmolVLM's template at its core: "User:<image>text<end_of_utterance>\nAssistant:"
IDEFICS_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}"
    "<end_of_utterance> {% endfor %}{% if add_generation_prompt %}Assistant :{% endif %}"
)


def build_tiny_idefics3(folder: Path, seed: int = 0, *, smolvlm: bool = False) -> Path:
    """An Idefics3 (SmolVLM-256M/500M's architecture) or, with ``smolvlm``, a SmolVLM (SmolVLM2's):
    a 32 px SigLIP-style tower, patch 8, pixel shuffle 2 → 4 tokens per 32 px tile; images up to 64 px
    split into 2x2 tiles plus the whole image."""
    import torch
    from transformers import LlamaConfig

    tok = _tokenizer_with(IDEFICS_TOKENS + ["<|im_start|>", "<video>"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    img_id = tok.convert_tokens_to_ids("<image>")
    ip_kw = dict(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    if smolvlm:
        from transformers import SmolVLMConfig as Config, SmolVLMForConditionalGeneration as Model
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil as IP
    else:
        from transformers import Idefics3Config as Config, Idefics3ForConditionalGeneration as Model
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil as IP
    torch.manual_seed(seed)
    model = Model(Config(vision_config=vision, text_config=text, image_token_id=img_id, scale_factor=2)).eval()
    _words_only(model, tok)
    model.save_pretrained(folder)
    IP(**ip_kw).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(IDEFICS_TEMPLATE)
    import json

    (folder / "processor_config.json").write_text(json.dumps({
        "processor_class": "SmolVLMProcessor" if smolvlm else "Idefics3Processor", "image_seq_len": 4}))
    return folder


TASK_WORDS = ["caption", "en", "question", "answer", "picture"]  # PaliGemma's and BLIP's task prefixes


def build_tiny_paligemma(folder: Path, seed: int = 0) -> Path:
    """A PaliGemma: SigLIP tower (32 px, patch 8 → 16 image tokens) + Gemma; no chat template, as
    PaliGemma has none: it is prompted with task prefixes ("caption en", "answer en ...")."""
    import torch
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessor

    ip = SiglipImageProcessor(size={"height": 32, "width": 32})
    ip.image_seq_length = 16
    tok = word_tokenizer(1024)
    tok.add_tokens(TASK_WORDS)
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)  # adds <image> and the <loc>/<seg> tokens
    cfg = PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        text_config=GemmaConfig(vocab_size=len(proc.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                                pad_token_id=0, bos_token_id=1, eos_token_id=2),
        image_token_index=proc.image_token_id, projection_dim=32, hidden_size=32, vocab_size=len(proc.tokenizer))
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(cfg).eval()
    _words_only(model, tok)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def build_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """A BLIP captioner (BlipForConditionalGeneration: ViT 32 px, patch 8, + a BERT-style decoder);
    no chat template: the text is a caption prefix ("a picture of")."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tok = word_tokenizer(64, bos_eos=True)
    tok.add_tokens(TASK_WORDS)
    proc = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)
    cfg = BlipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, encoder_hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, sep_token_id=2,
                         pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                           patch_size=8, initializer_range=0.02),  # BLIP's default (1e-10) makes every image look alike
        projection_dim=32, image_text_hidden_size=32)
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(cfg).eval()
    _words_only(model, tok)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


VLM_BUILDERS = {
    "llava": build_tiny_llava,
    "qwen2_vl": build_tiny_qwen2_vl,
    "qwen2_5_vl": lambda folder, seed=0: build_tiny_qwen2_vl(folder, seed, version="2.5"),
    "idefics3": build_tiny_idefics3,
    "smolvlm": lambda folder, seed=0: build_tiny_idefics3(folder, seed, smolvlm=True),
    "paligemma": build_tiny_paligemma,
    "blip": build_tiny_blip,
}
