"""Convert rosbag2 recordings (directories, split bags, bare .mcap/.db3) into a LeRobot v3 dataset.

--jobs N converts N bags at once (one process each; the dataset is in bag order either way).
--num-shards K --shard-index I converts only the I-th of K contiguous slices of the bags (for a
cluster job array); `merge_datasets` joins the shard datasets, in shard order, into one.

Exit status: 0 when every bag converted (or, with --skip-bad, at least one did); 1 when a bag or
the dataset cannot be read or written; 2 on bad command-line usage or a bad config file.
"""
import argparse
import sys

from ..layout import DatasetError
from .bag_reader import BagError
from .config import ConfigError, load_config
from .convert import PREVIEW_CURVES_PATH, PREVIEW_FRAMES_PATH, REPORT_PATH, ConversionError, convert_bags, shard_bags


def _int_at_least(minimum: int):
    """Return an argparse type: an integer >= minimum, else a usage error saying so."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer >= {minimum}, got {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'expected an integer >= {minimum}, got {value}')
        return value
    return parse


def build_parser():
    parser = argparse.ArgumentParser(prog='convert_bags', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('bags', nargs='+', metavar='BAG', help='rosbag2 directory or .mcap/.db3 file')
    parser.add_argument('--config', required=True, help='YAML mapping topics to dataset features')
    parser.add_argument('--output', required=True, help='dataset directory (LeRobot v3 layout)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--append', action='store_true', help='add episodes to an existing dataset')
    mode.add_argument('--overwrite', action='store_true', help='replace an existing dataset')
    parser.add_argument('--skip-bad', action='store_true', help='convert the good bags, list the bad ones')
    parser.add_argument('--task', default=None, help='task label for every episode (overrides the config)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.add_argument('--jobs', type=_int_at_least(1), default=1, help='bags converted at once (processes)')
    parser.add_argument('--num-shards', type=_int_at_least(1), default=1, help='split the bags into this many slices')
    parser.add_argument('--shard-index', type=_int_at_least(0), default=0, help='the slice to convert (0-based)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.shard_index >= args.num_shards:
        parser.error(f'--shard-index {args.shard_index} must be below --num-shards {args.num_shards}')
    bags = shard_bags(args.bags, args.num_shards, args.shard_index)
    if not bags:
        parser.error(f'shard {args.shard_index} of {args.num_shards} has no bags ({len(args.bags)} bag(s) given)')
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f'convert_bags: error: {exc}', file=sys.stderr)
        return 2
    try:
        converted, failures = convert_bags(bags, cfg, args.output, append=args.append,
                                           overwrite=args.overwrite, skip_bad=args.skip_bad, task_label=args.task,
                                           progress=not args.no_progress, jobs=args.jobs)
    except (BagError, DatasetError, ConversionError, OSError) as exc:  # OSError: e.g. the output is not writable
        print(f'convert_bags: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('convert_bags: interrupted; nothing was written', file=sys.stderr)
        return 130
    if converted:
        print(f'wrote {args.output}: {len(converted)} bag(s); sync report {REPORT_PATH}, previews '
              f'{PREVIEW_FRAMES_PATH}, {PREVIEW_CURVES_PATH}')
    if failures:
        print(f'skipped {len(failures)} bad bag(s):', file=sys.stderr)
        for bag, message in failures.items():
            print(f'  {bag}: {message}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
