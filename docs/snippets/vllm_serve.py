# requires: cuda, vllm (a GPU and `pip install vllm`)
from vllm import LLM, SamplingParams

# vLLM allocates the KV cache as fixed-size blocks in whatever memory is left after the
# weights, up to gpu_memory_utilization of the GPU; requests are batched continuously.
llm = LLM(model="meta-llama/Llama-3.1-8B-Instruct", gpu_memory_utilization=0.9,
          max_model_len=32768, block_size=16)
params = SamplingParams(temperature=0.8, max_tokens=256, n=4)  # 4 samples share the prompt's blocks
outputs = llm.generate(["Explain paged attention in one paragraph."], params)
for sample in outputs[0].outputs:
    print(sample.text)
