// Text: tokenizer, corpus streaming, token shards.
