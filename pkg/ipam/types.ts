export interface IpamRange { readonly subnet: string; readonly gateway?: string; readonly rangeStart?: string; readonly rangeEnd?: string }
export interface Allocation { readonly family: 'IPv4' | 'IPv6'; readonly ip: string; readonly prefix: number; readonly gateway: string }
export interface Attachment { readonly containerID: string; readonly ifname: string }
export interface Ipam {
  allocate (a: Attachment): Promise<Allocation[]>
  release (a: Attachment): Promise<void>
  gc (valid: readonly Attachment[]): Promise<number>
  reserved (a: Attachment): Promise<Allocation[]>
  available (): Promise<number[]>
}
