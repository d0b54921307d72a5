"""CLIP as train-ovt and eval both use it, so that neither imports the other.

loading      a CLIP from a local folder, the Hugging Face cache or the Hub; its tokenizer
preprocess   ImageTransform: CLIP's image preprocessing from the model's preprocessor_config.json
encoding     embed_images / embed_texts for any model with encode_image / encode_text; CLIPEncoder
templates    CLIP's 80 ImageNet prompt templates; class text embeddings (normalised template mean)
imagefolder  ImageFolder datasets (root/<class folder>/<images>) and their class names
classnames   class-name files (txt, JSON list, JSON dict, CSV) and label-set files

Import from the submodules; this package imports nothing heavy so `mvcap --help` stays fast.
"""
