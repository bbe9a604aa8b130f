import { createRouter, createWebHistory } from 'vue-router'
import { useSession } from './stores/session'
// The landing screen comes with the first bundle: no second round trip before it can draw.
import TradeView from './views/TradeView.vue'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/trade' },
    { path: '/trade/:symbol?', name: 'trade', component: TradeView },
    { path: '/wallet', name: 'wallet', component: () => import('./views/WalletView.vue'), meta: { auth: true } },
    { path: '/account', name: 'account', component: () => import('./views/AccountView.vue'), meta: { auth: true } },
    { path: '/share', name: 'share', component: () => import('./views/ShareView.vue'), meta: { auth: true } },
    { path: '/login', name: 'login', component: () => import('./views/LoginView.vue') },
    { path: '/signup', name: 'signup', component: () => import('./views/SignupView.vue') },
    { path: '/verify-email', name: 'verify', component: () => import('./views/VerifyEmailView.vue') },
    { path: '/reset-password', name: 'reset', component: () => import('./views/ResetPasswordView.vue') },
    { path: '/merchant', name: 'merchant', component: () => import('./views/MerchantView.vue'), meta: { auth: true } },
    { path: '/pos', name: 'pos', component: () => import('./views/PosView.vue'), meta: { auth: true } },
    { path: '/pay/:id', name: 'checkout', component: () => import('./views/CheckoutView.vue') },
    { path: '/refund/:token', name: 'refund', component: () => import('./views/RefundView.vue') },
    { path: '/:rest(.*)*', redirect: '/trade' },
  ],
})

router.beforeEach(async (to) => {
  const session = useSession()
  // Public screens draw at once and learn who is signed in as it arrives; private ones wait.
  if (!to.meta.auth) {
    if (!session.checked) void session.refresh().catch(() => null)
    return true
  }
  if (!session.checked) await session.refresh().catch(() => null)
  if (!session.me) return { name: 'login', query: { next: to.fullPath } }
  return true
})
