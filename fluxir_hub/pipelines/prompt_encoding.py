"""FLUX.1's two text encoders for a restoration pipeline, with the conditioning component's cache of prompt embeddings
first (the empty prompt and an all-in-one adapter's task prompts need no text encoder)."""

from __future__ import annotations

import torch

from ..latents import text_ids


class CachedPromptEncodingMixin:
    """`encode_prompt` for a FLUX.1 pipeline with `tokenizer`, `text_encoder` (CLIP), `tokenizer_2`, `text_encoder_2`
    (T5) and an `adapter` that may cache prompt embeddings."""

    def _clip_pooled_embeds(self, prompt: list[str], device: torch.device) -> torch.Tensor:
        inputs = self.tokenizer(
            prompt, padding="max_length", max_length=self.tokenizer_max_length, truncation=True, return_tensors="pt"
        )
        # token ids go to the execution device: under sequential offload the encoder's own `.device` is "meta"
        output = self.text_encoder(inputs.input_ids.to(device), output_hidden_states=False)
        return output.pooler_output.to(device)

    def _t5_embeds(self, prompt: list[str], max_sequence_length: int, device: torch.device) -> torch.Tensor:
        inputs = self.tokenizer_2(
            prompt, padding="max_length", max_length=max_sequence_length, truncation=True, return_tensors="pt"
        )
        return self.text_encoder_2(inputs.input_ids.to(device), output_hidden_states=False)[0].to(device)

    def encode_prompt(
        self,
        prompt: str | list[str],
        prompt_2: str | list[str] | None = None,
        device: torch.device | None = None,
        prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""
        Encode prompts into T5 and pooled CLIP embeddings.

        Prompts the adapter carries embeddings of (the empty prompt, and an all-in-one adapter's task prompts) come
        from that cache, so restoring without a prompt of one's own needs no text encoder.

        Args:
            prompt (`str` or `list[str]`): Prompt(s) for CLIP (and T5 unless `prompt_2` is given).
            prompt_2 (`str` or `list[str]`, *optional*): Prompt(s) for T5.
            device (`torch.device`, *optional*): Where the embeddings go.
            prompt_embeds (`torch.Tensor` of shape `(batch_size, text_sequence_length, joint_attention_dim)`, *optional*):
                Precomputed T5 embeddings; skips the text encoders.
            pooled_prompt_embeds (`torch.Tensor` of shape `(batch_size, pooled_projection_dim)`, *optional*):
                Precomputed pooled CLIP embeddings; needed with `prompt_embeds`.
            max_sequence_length (`int`, *optional*): T5 token length; defaults to what `__call__` uses: the adapter's
                (512 for FLUX.1), or the T5 tokenizer's context when the pipeline has no adapter.

        Returns:
            `(prompt_embeds, pooled_prompt_embeds, text_ids)`.
        """
        device = device or self._execution_device
        if max_sequence_length is None:
            max_sequence_length = self.default_max_sequence_length
        adapter = getattr(self, "adapter", None)
        if prompt_embeds is None:
            prompt = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_2 = prompt if prompt_2 is None else ([prompt_2] if isinstance(prompt_2, str) else list(prompt_2))
            cached = (
                [adapter.get_prompt_embeds(p) for p in prompt] if adapter is not None and prompt == prompt_2 else []
            )
            if cached and all(c is not None for c in cached) and len({c[0].shape for c in cached}) == 1:
                if len(set(prompt)) == 1:  # one prompt for the batch: a broadcast view, as it always was
                    prompt_embeds = cached[0][0].to(device)[None].expand(len(prompt), -1, -1)
                    pooled_prompt_embeds = cached[0][1].to(device)[None].expand(len(prompt), -1)
                else:
                    prompt_embeds = torch.stack([c[0] for c in cached]).to(device)
                    pooled_prompt_embeds = torch.stack([c[1] for c in cached]).to(device)
            else:
                missing = [
                    name
                    for name in ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
                    if getattr(self, name, None) is None
                ]
                if missing:
                    raise ValueError(
                        f"Encoding a prompt needs {', '.join(missing)}, which this pipeline was loaded without. "
                        "Load the pipeline with its text encoders, pass `prompt_embeds` and `pooled_prompt_embeds`, "
                        "or use the empty prompt with an adapter that caches its embeddings."
                    )
                pooled_prompt_embeds = self._clip_pooled_embeds(prompt, device)
                prompt_embeds = self._t5_embeds(prompt_2, max_sequence_length, device)
        transformer = getattr(self, "transformer", None)
        dtype = transformer.dtype if transformer is not None else prompt_embeds.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
        pooled_prompt_embeds = pooled_prompt_embeds.to(device=device, dtype=dtype)
        return prompt_embeds, pooled_prompt_embeds, text_ids(prompt_embeds.shape[1], device=device, dtype=dtype)

    @property
    def default_max_sequence_length(self) -> int:
        """T5 tokens per prompt when the caller gives none: the adapter's `theta_p` length, else the tokenizer's."""
        adapter = getattr(self, "adapter", None)
        if adapter is not None:
            return adapter.config.max_sequence_length
        tokenizer_2 = getattr(self, "tokenizer_2", None)
        return min(512, tokenizer_2.model_max_length) if tokenizer_2 is not None else 512

    @torch.no_grad()
    def cache_prompt_embeds(self, max_sequence_length: int | None = None) -> None:
        """
        Encode the empty prompt and each of the adapter's task prompts once and store them in the adapter (saved with
        `adapter.save_pretrained`), so later runs without a prompt of their own need no text encoder. Afterwards the
        text encoders can be dropped, e.g. `pipe.text_encoder_2 = None`.
        """
        device = self._execution_device
        if max_sequence_length is None:
            max_sequence_length = self.default_max_sequence_length
        for prompt in ["", *(self.adapter.config.get("task_prompts") or {}).values()]:  # one at a time: as a call
            pooled = self._clip_pooled_embeds([prompt], device)
            embeds = self._t5_embeds([prompt], max_sequence_length, device)
            self.adapter.set_prompt_embeds(prompt, embeds[0], pooled[0])

    cache_empty_prompt_embeds = cache_prompt_embeds  # the name before task prompts were cached too
