"""Code that runs inside Lambda: `handlers` (every function's entrypoint, the image's CMD), `container`
(what a container sets up once: settings, step context, JSON logs), `secrets` (the OpenAI key from
Secrets Manager or SSM) and `scheduled` (the scheduled starter of one execution per slot)."""
