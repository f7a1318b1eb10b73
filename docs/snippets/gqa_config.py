from transformers import LlamaConfig

# Llama 3.1 70B's attention shape, as in its config.json. With network access the same
# object comes from AutoConfig.from_pretrained("meta-llama/Llama-3.1-70B").
config = LlamaConfig(hidden_size=8192, num_hidden_layers=80,
                     num_attention_heads=64, num_key_value_heads=8)
head_dim = config.hidden_size // config.num_attention_heads          # 128
group = config.num_attention_heads // config.num_key_value_heads     # query heads per KV head
kv_bytes_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 2  # K+V, bf16
print(f"{group} query heads share each KV head; {kv_bytes_per_token / 2**10:.0f} KiB per token")
