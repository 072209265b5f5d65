// The shop's REST API as the pages use it (paths and JSON shapes from the edge's
// OpenAPI document, /api/openapi.json; field names are the proto's, in lowerCamelCase).

import { call, get, query } from "./api";
import type { Money } from "./dom";
import { session, type User } from "./session";

export interface Product {
  productId: string;
  name: string;
  description: string;
  category: string;
  price: Money;
  imageUrl: string;
  popularity: number;
}

export interface ProductPage {
  products: Product[];
  nextPageToken: string;
}

export interface Line {
  productId: string;
  name: string;
  quantity: number;
  unitPrice: Money;
  lineTotal: Money;
}

export interface Cart {
  items: Line[];
  total?: Money;
}

export interface Order {
  orderId: string;
  state: string; // STATE_PENDING, STATE_CONFIRMED, STATE_CANCELLED
  lines: Line[];
  total?: Money;
  cancelReason: string;
  createdAt?: string;
}

export interface Payment {
  paymentId: string;
  orderId: string;
  amount?: Money;
  status: string;
  declineReason: string;
  cardLast4: string;
}

export interface Dashboard {
  user?: User;
  recentOrders: Order[];
  recentPayments: Payment[];
  recommendations: Product[];
  recommendationSource: string;
  degraded: string[];
}

export interface Card {
  number: string;
  expMonth: number;
  expYear: number;
  cvc: string;
}

export interface Address {
  name: string;
  line1: string;
  line2: string;
  city: string;
  postalCode: string;
  country: string;
}

// The catalog has no RPC that lists its categories; these are the seed's
// (services/catalog/seed.py), each with its picture under /images/.
export const CATEGORIES = ["coffee", "tea", "kitchen", "books", "outdoor", "audio"];

export const PAGE_SIZE = 12;

function me(): string {
  if (!session.user) throw new Error("Please log in first.");
  return `/api/v1/users/${encodeURIComponent(session.user.userId)}`;
}

export const listProducts = (category: string, pageToken: string) =>
  get<ProductPage>(`/api/v1/products${query({ pageSize: PAGE_SIZE, category, pageToken })}`);

export const searchProducts = (q: string, pageToken: string) =>
  get<ProductPage>(`/api/v1/products:search${query({ query: q, pageSize: PAGE_SIZE, pageToken })}`);

export const getProduct = (id: string) =>
  get<{ product: Product }>(`/api/v1/products/${encodeURIComponent(id)}`);

export const getStock = (id: string) =>
  get<{ items: { productId: string; available: number; reserved: number }[] }>(
    `/api/v1/stock${query({ productIds: id })}`);

export async function register(email: string, password: string, fullName: string) {
  return call<{ user: User }>("POST", "/api/v1/users", { email, password, fullName });
}

export async function login(email: string, password: string): Promise<void> {
  const r = await call<{ accessToken: string; user: User }>(
    "POST", "/api/v1/sessions", { email, password });
  session.set(r.accessToken, r.user);
}

export const getCart = () => get<{ cart: Cart }>(`${me()}/cart`);
export const addItem = (productId: string, quantity: number) =>
  call<{ cart: Cart }>("POST", `${me()}/cart/items`, { productId, quantity });
export const setQuantity = (productId: string, quantity: number) =>
  call<{ cart: Cart }>("PATCH", `${me()}/cart/items/${encodeURIComponent(productId)}`,
    { quantity });
export const removeItem = (productId: string) =>
  call<{ cart: Cart }>("DELETE", `${me()}/cart/items/${encodeURIComponent(productId)}`);

export const placeOrder = (idempotencyKey: string, card: Card, shippingAddress: Address) =>
  call<{ order: Order }>("POST", `${me()}/orders`, { idempotencyKey, card, shippingAddress });
export const listOrders = (pageToken = "") =>
  get<{ orders: Order[]; nextPageToken: string }>(
    `${me()}/orders${query({ pageSize: 20, pageToken })}`);

export const getDashboard = () => get<Dashboard>(`${me()}/dashboard`);
export const getRecommendations = () =>
  get<{ products: Product[]; source: string }>(`${me()}/recommendations${query({ limit: 4 })}`);

/** "STATE_CONFIRMED" -> "CONFIRMED" */
export const stateName = (state: string) => state.replace(/^STATE_|^STATUS_/, "");
