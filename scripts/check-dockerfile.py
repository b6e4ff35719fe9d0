#!/usr/bin/env python3
"""The Dockerfile's build stage builds, checked without a Docker engine.

Copies exactly what the stage's COPY lines name (minus .dockerignore) into an empty folder that
stands for the image's file system, then runs the stage's `cargo build ...` (its RUN, up to the
first `&&`) in its WORKDIR there, with CARGO_TARGET_DIR at the repository's target/ so that only
the workspace's own crates are compiled. Then every binary of the workspace's default members
(which the stage copies out of target/) must be freshly built. The repository's own artifacts in
target/ are left as they were.

    scripts/check-dockerfile.py [--dockerfile Dockerfile] [--stage build]

Prints one line, OK or FAIL (then cargo's message), and exits 0 or 1.
"""
import argparse
import contextlib
import glob
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARGO_BUILD = re.compile(r"\bcargo\s+(\+\S+\s+)?build\b")
# Cargo's progress lines, left out when showing why a build failed.
CARGO_PROGRESS = re.compile(
    r"^\s*(Compiling|Checking|Building|Blocking|Downloading|Downloaded|Updating|Locking|"
    r"Adding|Finished|Fresh|Running)\b"
)


class CheckError(Exception):
    pass


def instructions(path):
    """(keyword, arguments) of every instruction: continuations joined, comments dropped."""
    logical, current = [], ""
    for line in open(path, encoding="utf-8"):
        stripped = line.strip()
        # Docker drops comment lines, also in the middle of a continued instruction.
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            logical.append(current.strip())
        current = ""
    if current.strip():
        logical.append(current.strip())
    for text in logical:
        keyword, _, rest = text.partition(" ")
        yield keyword.upper(), rest.strip()


def words(arguments):
    """The words of a COPY/ENV line, JSON (exec) form or shell form."""
    if arguments.startswith("["):
        return json.loads(arguments)
    return shlex.split(arguments)


def expand(text, variables):
    """$NAME and ${NAME} from the stage's ARG/ENV; unknown names stay as they are."""
    def value(match):
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", value, text)


def build_stage(dockerfile, stage):
    """Up to the stage's RUN of `cargo build`: its COPY lines as (sources, destination), the
    WORKDIR and ENV there, that RUN's `cargo build ...` part and its whole command."""
    in_stage = False
    workdir, variables, env = "/", {}, {}
    copies = []
    global_args, seen_from = {}, False
    for keyword, arguments in instructions(dockerfile):
        if keyword == "ARG" and not seen_from:
            for part in words(arguments):
                name, _, value = part.partition("=")
                global_args[name] = value
            continue
        if keyword == "FROM":
            seen_from = True
            names = arguments.split()
            in_stage = len(names) >= 3 and names[-2].upper() == "AS" and names[-1] == stage
            continue
        if not in_stage:
            continue
        if keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, expand(arguments, variables)))
        elif keyword in ("ENV", "ARG"):
            parts = words(arguments)
            if keyword == "ENV" and parts and "=" not in parts[0]:
                pairs = [(parts[0], " ".join(parts[1:]))]  # the old `ENV NAME value` form
            else:
                pairs = [p.split("=", 1) if "=" in p else (p, global_args.get(p)) for p in parts]
            for name, value in pairs:
                if value is not None:
                    variables[name] = expand(value, variables)
                    if keyword == "ENV":
                        env[name] = variables[name]
        elif keyword == "ADD":
            raise CheckError(f"ADD in stage {stage} is not supported by this check (use COPY)")
        elif keyword == "COPY":
            flags = re.match(r"(--\S+\s+)*", arguments).group(0)
            if "--from" in flags:
                continue
            paths = [expand(w, variables) for w in words(arguments[len(flags):])]
            if len(paths) < 2:
                raise CheckError(f"COPY {arguments}: needs a source and a destination")
            copies.append((paths[:-1], posixpath.join(workdir, paths[-1])))
        elif keyword == "RUN" and CARGO_BUILD.search(arguments):
            # RUN's own options (--mount=..., --network=...) are Docker's, not the command's.
            command = re.sub(r"^(--\S+\s+)+", "", arguments)
            if command.startswith("["):
                command = shlex.join(json.loads(command))
            segment = next(s for s in re.split(r"&&|\|\||;", command) if CARGO_BUILD.search(s))
            return copies, workdir, env, segment.strip(), command
    raise CheckError(f"no stage `AS {stage}` with a RUN of `cargo build` in {dockerfile}")


def dockerignore_rules(context):
    """(regex, excludes) per .dockerignore line; the last matching line decides."""
    path = os.path.join(context, ".dockerignore")
    rules = []
    if not os.path.exists(path):
        return rules
    for line in open(path, encoding="utf-8"):
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        excludes = not pattern.startswith("!")
        pattern = posixpath.normpath(pattern.lstrip("!").strip()).lstrip("/")
        regex = ""
        for token in re.findall(r"\*\*/?|\*|\?|\[[^\]]*\]|[^*?\[]+", pattern):
            if token.startswith("**"):
                regex += "(.*/)?" if token.endswith("/") else ".*"
            elif token == "*":
                regex += "[^/]*"
            elif token == "?":
                regex += "[^/]"
            elif token.startswith("["):
                regex += token.replace("[!", "[^")
            else:
                regex += re.escape(token)
        rules.append((re.compile(regex + r"\Z"), excludes))
    return rules


def ignored(relative, rules):
    """Whether Docker leaves `relative` (or a folder above it) out of the build context."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for regex, excludes in rules:
        if any(regex.match(p) for p in prefixes):
            result = excludes
    return result


def copy_into(image_root, context, copies, rules):
    """Performs the COPY lines into `image_root` (the image's `/`); returns how many files."""
    count = 0

    def put(source, target):
        nonlocal count
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # Fresh mtimes, so that cargo compiles the copy rather than trusting earlier builds.
        shutil.copy(source, target, follow_symlinks=False)
        count += 1

    for sources, destination in copies:
        into_folder = destination.endswith("/") or len(sources) > 1 or any(
            any(c in s for c in "*?[") for s in sources)
        for source in sources:
            matches = sorted(glob.glob(os.path.join(context, source), include_hidden=True))
            matches = [m for m in matches
                       if not ignored(os.path.relpath(m, context).replace(os.sep, "/"), rules)]
            if not matches:
                raise CheckError(f"COPY {source}: not in the build context")
            for match in matches:
                target = image_root + posixpath.normpath(destination)
                if os.path.isdir(match) and not os.path.islink(match):
                    # A folder's contents go to the destination, not the folder itself.
                    for folder, subfolders, files in os.walk(match):
                        subfolders.sort()
                        for name in sorted(files):
                            path = os.path.join(folder, name)
                            relative = os.path.relpath(path, context).replace(os.sep, "/")
                            if not ignored(relative, rules):
                                put(path, os.path.join(target, os.path.relpath(path, match)))
                elif into_folder or os.path.isdir(target):
                    put(match, os.path.join(target, os.path.basename(match)))
                else:
                    put(match, target)
    return count


def binaries(cwd, env):
    """Names of the binaries of the workspace's default members (what a plain build makes)."""
    out = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
                         cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise CheckError(f"cargo metadata failed:\n{out.stderr.strip()}")
    metadata = json.loads(out.stdout)
    members = set(metadata.get("workspace_default_members") or metadata["workspace_members"])
    return sorted(t["name"] for p in metadata["packages"] if p["id"] in members
                  for t in p["targets"] if "bin" in t["kind"] and not t.get("required-features"))


def profile_folder(command):
    """The folder of target/ that `cargo build` with these flags writes to."""
    argv = shlex.split(command)
    profile = "release" if "--release" in argv or "-r" in argv else "dev"
    for i, word in enumerate(argv):
        if word == "--profile" and i + 1 < len(argv):
            profile = argv[i + 1]
        elif word.startswith("--profile="):
            profile = word.split("=", 1)[1]
    return {"dev": "debug", "test": "debug", "bench": "release"}.get(profile, profile)


@contextlib.contextmanager
def outputs_kept(folder):
    """Sets the files directly in target/<profile>/ (binaries cargo copies up from deps/, their
    .d files) aside and puts them back afterwards: the copy's must not stand in for the
    repository's."""
    os.makedirs(folder, exist_ok=True)
    def top_level():
        # Dot files are cargo's own (.cargo-lock, which a concurrent cargo may hold).
        paths = {n: os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith(".")}
        return {n for n, p in paths.items() if os.path.isfile(p) and not os.path.islink(p)}
    aside = tempfile.mkdtemp(prefix=".dockerfile-check.", dir=os.path.dirname(folder))
    before = top_level()
    try:
        for name in before:
            os.rename(os.path.join(folder, name), os.path.join(aside, name))
        yield
    finally:
        for name in top_level():
            os.remove(os.path.join(folder, name))
        for name in os.listdir(aside):
            os.rename(os.path.join(aside, name), os.path.join(folder, name))
        os.rmdir(aside)


def build(image_root, workdir, stage_env, command, run, named):
    """Runs `command` in the copy; returns the binaries it built and the crates it compiled."""
    target_dir = os.path.join(ROOT, "target")
    cwd = image_root + workdir
    os.makedirs(cwd, exist_ok=True)
    # The copy's crates have the repository's names; the workspace wrapper (a no-op) keeps their
    # artifacts in deps/ apart, so that the repository's builds never take up as fresh a library
    # that points at this deleted folder (CARGO_MANIFEST_DIR).
    env = dict(os.environ, **stage_env, CARGO_TARGET_DIR=target_dir,
               RUSTC_WORKSPACE_WRAPPER=shutil.which("env") or "/usr/bin/env")
    # The build links ONNX Runtime at run time: it must not need setup.sh's library.
    env.pop("ORT_DYLIB_PATH", None)
    folder = os.path.join(target_dir, profile_folder(command))
    started = time.time()
    with outputs_kept(folder):
        result = subprocess.run(["sh", "-c", command], cwd=cwd, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            message = [l for l in result.stdout.splitlines() if not CARGO_PROGRESS.match(l)]
            raise CheckError(f"`{command}` fails in {workdir} holding only the COPY sources "
                             f"({named}):\n" + "\n".join(("    " + l).rstrip() for l in message))
        # The stage copies out target/'s executables and insists on at least these.
        required = re.findall(r"test\s+-x\s+\S*/([A-Za-z0-9_.-]+)", run)
        names = binaries(cwd, env)
        stale = [n for n in sorted(set(names) | set(required))
                 if not (os.path.isfile(os.path.join(folder, n))
                         and os.path.getmtime(os.path.join(folder, n)) >= started - 1)]
        if stale or not names:
            raise CheckError(f"`{command}` succeeded but did not build "
                             f"{', '.join(stale) or 'any binary'} (in {folder})")
    # Which crates were compiled shows whether the dependencies came from target/.
    return names, re.findall(r"^\s*Compiling (\S+)", result.stdout, re.MULTILINE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dockerfile", default=os.path.join(ROOT, "Dockerfile"))
    parser.add_argument("--stage", default="build")
    args = parser.parse_args()
    label = f"Dockerfile stage {args.stage}"
    started = time.time()
    try:
        copies, workdir, stage_env, command, run = build_stage(args.dockerfile, args.stage)
        named = ", ".join(" ".join(s) for s, _ in copies)
        with tempfile.TemporaryDirectory(prefix="dockerfile-check.") as image_root:
            files = copy_into(image_root, ROOT, copies, dockerignore_rules(ROOT))
            names, compiled = build(image_root, workdir, stage_env, command, run, named)
    except CheckError as error:
        print(f"FAIL {label}: {error}", file=sys.stderr)
        return 1
    print(f"OK {label}: `{command}` builds {', '.join(names)} from the {files} files of its "
          f"COPY lines ({named}) alone, in {time.time() - started:.0f}s "
          f"(compiled: {', '.join(compiled) or 'nothing'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
