"""Model building blocks shared by plugins: torchvision backbones (`backbones`) and the named
feature-level contract (`levels`)."""
