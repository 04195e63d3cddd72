#!/usr/bin/python3
"""Checks that deploy/kubernetes/ holds what an operator relies on: probes on the admin
endpoint, a termination grace period longer than the shutdown delay plus the graceful
timeout, resource requests, the configuration from a ConfigMap, and a Service that selects
the pods. Exits 1, naming each problem, when something is missing."""

import re
import sys
import tomllib
from pathlib import Path

import yaml

problems = []


def check(condition, problem):
    if not condition:
        problems.append(problem)


def load(directory):
    documents = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents[document["kind"]] = document
    return documents


def seconds_after(args, flag):
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return float(args[i + 1])
        if arg.startswith(flag + "="):
            return float(arg.split("=", 1)[1])
    return 0.0


def main(directory):
    docs = load(directory)
    for kind in ("Deployment", "Service", "ConfigMap"):
        check(kind in docs, f"no {kind}")
    if problems:
        return

    deployment, service, config_map = docs["Deployment"], docs["Service"], docs["ConfigMap"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    # Probes on the admin endpoint: readiness turns off at once on TERM (shutdown delay),
    # liveness answers from the master while workers crash or hang.
    for probe in ("readinessProbe", "livenessProbe"):
        check(probe in container, f"container has no {probe}")
        command = " ".join(container.get(probe, {}).get("exec", {}).get("command", []))
        check(command.startswith("preforkctl"), f"{probe} does not ask preforkctl: {command!r}")
    check("health" in " ".join(container["readinessProbe"]["exec"]["command"]),
          "readinessProbe is not `preforkctl health`")

    # Configuration file from the ConfigMap.
    config_text = config_map["data"].get("prefork.toml", "")
    config = tomllib.loads(config_text)
    check("command" in config, "prefork.toml has no worker command")
    check(config.get("admin", "").startswith("127.0.0.1:"), "the admin endpoint is not on loopback")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    config_volumes = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == config_map["metadata"]["name"]]
    check(config_volumes, "no volume from the ConfigMap")
    for name in config_volumes:
        check(name in mounts, f"the ConfigMap volume {name} is not mounted")
        args = container.get("args", [])
        check(any(mounts.get(name, {}).get("mountPath", "//") in arg for arg in args),
              "the container does not read the mounted configuration (--config)")

    # Stop: the pod must outlive the shutdown delay plus the graceful timeout.
    delay = seconds_after(container.get("args", []), "--shutdown-delay")
    graceful = float(config.get("graceful_timeout", 30))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(delay > 0, "no --shutdown-delay: the Service would still send traffic to closed listeners")
    check(grace > delay + graceful,
          f"terminationGracePeriodSeconds {grace} is not more than shutdown delay {delay} + graceful_timeout {graceful}")

    # Resources, and a Service that reaches the pods.
    requests = container.get("resources", {}).get("requests", {})
    check("cpu" in requests and "memory" in requests, "no cpu and memory requests")
    selector = service["spec"]["selector"]
    check(all(labels.get(k) == v for k, v in selector.items()), "the Service does not select the pods")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for port in service["spec"]["ports"]:
        check(port["targetPort"] in ports or port["targetPort"] in ports.values(),
              f"the Service's targetPort {port['targetPort']} is not a container port")
    check(any(re.search(rf":{p}\"?\]?$", b) for b in config.get("bind", []) for p in ports.values()),
          "prefork does not bind the container port")


if __name__ == "__main__":
    main(sys.argv[1])
    for problem in problems:
        print(f"deploy/kubernetes: {problem}")
    print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
    sys.exit(1 if problems else 0)
