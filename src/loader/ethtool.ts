/**
 * The kernel driver of a network interface, as `ethtool -i` reports it
 * (ETHTOOL_GDRVINFO through SIOCETHTOOL on a socket of this network
 * namespace), without the ethtool binary: the decap engine choice needs it
 * and the runtime image does not carry ethtool.
 */
import koffi from 'koffi';
import { libbpf } from './libbpf.js';

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SIOCETHTOOL = 0x8946;
const ETHTOOL_GDRVINFO = 0x3;
/** struct ethtool_drvinfo: cmd, driver[32], version[32], fw_version[32], bus_info[32], erom_version[32], reserved2[12], 5 × u32. */
const DRVINFO_SIZE = 196;
const IFNAMSIZ = 16;
/** struct ifreq: name[16] + a 24-byte union whose first member is the data pointer. */
const IFREQ_SIZE = 40;

/** Driver name of `ifname` ("veth", "virtio_net", "mlx5_core"…), or null when the interface has none to report. */
export function interfaceDriver(ifname: string): string | null {
  if (!ifname || Buffer.byteLength(ifname) >= IFNAMSIZ) return null;
  const lib = libbpf();
  const fd = lib.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return null;
  const info = koffi.alloc('uint8_t', DRVINFO_SIZE);
  try {
    const view = Buffer.from(koffi.view(info, DRVINFO_SIZE));
    view.fill(0);
    view.writeUInt32LE(ETHTOOL_GDRVINFO, 0);
    const ifr = Buffer.alloc(IFREQ_SIZE);
    ifr.write(ifname, 0, IFNAMSIZ - 1, 'utf8');
    ifr.writeBigUInt64LE(BigInt(koffi.address(info)), IFNAMSIZ);
    if (lib.ioctl(fd, SIOCETHTOOL, ifr) < 0) return null;
    const driver = view.subarray(4, 36);
    const end = driver.indexOf(0);
    return driver.toString('utf8', 0, end >= 0 ? end : driver.length) || null;
  } finally {
    koffi.free(info);
    lib.close(fd);
  }
}
