# GPU image for neuralgrok: CUDA PyTorch base, the project installed the README's way, Accelerate as the entry.
#   docker build -t neuralgrok .
#   docker run --gpus all -v $PWD/runs:/work/runs neuralgrok -m neuralgrok train --task 'a*b' --method neuralgrok
#   docker run --gpus all -v $PWD/runs:/work/runs neuralgrok --multi_gpu --num_processes 4 -m neuralgrok train ...
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

WORKDIR /opt/neuralgrok
COPY pyproject.toml README.md ./
COPY neuralgrok ./neuralgrok
COPY baselines ./baselines
COPY experiments ./experiments
# The base image's CUDA torch satisfies the dependency, so pip keeps it and installs the rest.
RUN pip install --no-cache-dir -e . && python -c "import neuralgrok, baselines"

WORKDIR /work
ENTRYPOINT ["accelerate", "launch"]
CMD ["-m", "neuralgrok", "--help"]
