"""CT-GAN style learned in-painting: 3-D U-Net generator + 3-D PatchGAN (model), training (train), attacks."""
