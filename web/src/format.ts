import type { OrderStatus } from "./generated";

export const money = (cents: number) => `€${(cents / 100).toFixed(2)}`;

export const time = (iso: string | null) =>
  iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";

export const STATUS_LABEL: Record<OrderStatus, string> = {
  placed: "Placed",
  stockReserved: "Stock reserved",
  paymentCaptured: "Paid",
  confirmed: "Confirmed",
  ready: "Ready",
  completed: "Collected",
  rejected: "Rejected",
  cancelled: "Cancelled",
};

/** The happy path, in order. */
export const STEPS: OrderStatus[] = ["placed", "stockReserved", "paymentCaptured", "confirmed", "ready", "completed"];
