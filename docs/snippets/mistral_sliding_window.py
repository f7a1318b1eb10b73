import torch
from transformers import MistralConfig, MistralForCausalLM

# A tiny random Mistral with Mistral 7B's mechanism: each token sees itself and the
# `sliding_window - 1` tokens before it, in every layer.
config = MistralConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2, sliding_window=4)
model = MistralForCausalLM(config).eval()
tokens = torch.randint(0, 100, (1, 12), generator=torch.Generator().manual_seed(0))
changed = tokens.clone()
changed[0, 0] = (tokens[0, 0] + 1) % 100  # edit only the first token
with torch.no_grad():
    a, b = model(tokens).logits, model(changed).logits
reach = [i for i in range(12) if not torch.allclose(a[0, i], b[0, i])]
print("positions the first token reaches in one layer:", reach)  # [0, 1, 2, 3]
