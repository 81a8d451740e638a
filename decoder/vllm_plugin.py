"""A vLLM general plugin (entry point `vllm.general_plugins`, loaded by vLLM in every process it starts, the engine's
workers and `vllm serve` included) that works around a crash of vLLM 0.32 with prompt embeddings + LoRA.

With `enable_prompt_embeds` and `enable_lora`, the model runner embeds only the tokens that are token ids (the
generated ones) through the LoRA-wrapped embedding layer, whose LoRA index mapping covers the whole batch: the shapes
disagree and the worker dies ("einsum(): subscript b has size 4096 ... previously seen size 2"; the crash vLLM
issue 51122 reports). Our adapters never carry embedding weights (vLLM could not serve them), so the embedding layer
has nothing to add: the patch makes it use the base embedding unless an adapter with embedding weights is loaded.
"""

from __future__ import annotations


def register() -> None:
    try:
        from vllm.lora.layers.vocab_parallel_embedding import VocabParallelEmbeddingWithLoRA as Layer
    except ImportError:  # another vLLM layout: nothing to patch
        return
    if getattr(Layer, "_ami_patched", False):
        return
    original_forward, original_set, original_reset = Layer.forward, Layer.set_lora, Layer.reset_lora

    def set_lora(self, index, lora_a, lora_b, *args, **kwargs):
        out = original_set(self, index, lora_a, lora_b, *args, **kwargs)
        self._ami_embedding_lora = bool(self.lora_b_stacked.abs().sum() > 0)
        return out

    def reset_lora(self, index):
        out = original_reset(self, index)
        self._ami_embedding_lora = bool(self.lora_b_stacked.abs().sum() > 0)
        return out

    def forward(self, x):
        if not getattr(self, "_ami_embedding_lora", False):
            return self.base_layer.forward(x)
        return original_forward(self, x)

    Layer.set_lora, Layer.reset_lora, Layer.forward = set_lora, reset_lora, forward
    Layer._ami_patched = True
