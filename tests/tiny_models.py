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


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
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
                        norm_num_groups=8, sample_size=16)
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
