"""Model building blocks shared by plugins: torchvision backbones (`backbones`), the named
feature-level contract (`levels`) and the opt-in CPU training pass (`cpu_training`)."""
