"""Training set-ups shared by the demo sections and the benchmarks, written once.

- ``gan_toy``: 2-D Gaussian-mixture GAN training and mode metrics (gan-losses, keras-compat);
- ``flows_digits``: the five flows trained in lockstep on 8x8 digits (flows);
- ``textkit_data``: People's Daily 1998-01, whole or its first paragraphs;
- ``textkit_tagging``: the NER (BIO) and CWS (BMES) views of People's Daily for the taggers;
- ``textkit_qa``: the QA-by-generation examples, their encoding and the UniLM model.
"""
