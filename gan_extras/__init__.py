"""GAN-made extras for the training set (DESIGN §4), judged by FID/KID on the family's features.

* :mod:`gan_extras.cyclegan`: simulated scans translated to look real; labels carry over.
* :mod:`gan_extras.dcgan`: a label-conditioned DCGAN drawing new small frames with labels.
* :mod:`gan_extras.srgan`: a ×2 upscaler (sub-pixel convolution, PReLU, residual blocks) that
  takes DCGAN frames to the family's 128×128.
* :mod:`gan_extras.extras`: write generated frames in the project's HDF5 format (sessions
  marked as generated) and judge them against real frames; ``main_training.py --extra-data``
  adds them to a training set. Evaluation stays on real frames only.

``python -m gan_extras --help`` lists the commands.
"""
